"""``dingskill train``, ``dingskill evaluate`` and ``dingskill predict``: the NLU from the shell."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from .._version import __version__


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train an intent classifier on a dataset")
    t.add_argument("data")
    t.add_argument("-o", "--output", required=True, help="model folder to write")
    t.add_argument("--text-col", default="text")
    t.add_argument("--intent-col", default="intent")
    t.add_argument("--threshold", default="auto", help="auto | none | a number in [0, 1]")
    t.add_argument("--test", default=None, help="held-out file (default: a stratified split)")
    t.add_argument("--test-size", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_train)
    e = sub.add_parser("evaluate", help="evaluate a trained model folder on a dataset")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--cv", type=int, default=0)
    e.add_argument("--json", action="store_true")
    e.add_argument("--html", default=None, help="also write an HTML report here")
    e.set_defaults(func=_evaluate)
    p = sub.add_parser("predict", help="classify utterances with a trained model folder")
    p.add_argument("model")
    p.add_argument("texts", nargs="+")
    p.set_defaults(func=_predict)


def _threshold(value: str):
    if value == "auto":
        return "auto"
    if value.lower() == "none":
        return None
    x = float(value)
    if not 0 <= x <= 1:
        raise ValueError(f"--threshold must be auto, none or in [0, 1], got {value}")
    return x


def _model_file(folder: str) -> Path:
    p = Path(folder)
    return p / "model.dsm" if p.is_dir() else p


def _train(args) -> int:
    from tqdm.auto import tqdm

    from ..datasets import DatasetError, load
    from ..evaluation import evaluate
    from ..nlu import IntentClassifier

    steps = tqdm(total=4, desc="train", unit="step")
    try:
        ds = load(args.data, text_col=args.text_col, intent_col=args.intent_col)
        report = ds.validate()
        if not report.ok:
            for line in report.lines():
                print(line)
            print(f"error: {args.data} has {len(report.errors)} error(s); fix them before training")
            return 1
        steps.update(1)
        if args.test:
            train, test = ds, load(args.test, text_col=args.text_col, intent_col=args.intent_col)
        else:
            split = ds.split(test_size=args.test_size, seed=args.seed)
            train, test = split.subset("train"), split.subset("test")
        model = IntentClassifier(oos_threshold=_threshold(args.threshold), random_state=args.seed)
        model.fit(train.texts, train.intents)
        steps.update(1)
        ev = evaluate(model, test, name=str(args.data))
        steps.update(1)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.dsm")
    (out / "evaluation.json").write_text(ev.to_json(), encoding="utf-8")
    rows = sorted(f"{t}\t{i}" for t, i in zip(train.texts, train.intents, strict=True))
    meta = {
        "dingskill": __version__,
        "data": str(args.data),
        "train_utterances": len(train),
        "test_utterances": len(test),
        "intents": sorted(set(train.intents)),
        "sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
        "threshold": model.threshold_,
    }
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    steps.update(1)
    steps.close()
    s = ev.summary
    print(f"trained on {len(train)} utterances, {len(meta['intents'])} intents -> {out}")
    for k in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"):
        print(f"  {k:<18} {s[k]:.3f}")
    return 0


def _evaluate(args) -> int:
    from ..datasets import DatasetError, load
    from ..evaluation import evaluate
    from ..nlu import IntentClassifier

    try:
        model = IntentClassifier.load(_model_file(args.model))
        ds = load(args.data)
        ev = evaluate(
            model,
            ds,
            cv=args.cv,
            train=ds if args.cv else None,
            progress=args.cv > 1,
            name=args.data,
        )
    except (DatasetError, ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    if args.html:
        Path(args.html).write_text(ev.to_html(), encoding="utf-8")
    if args.json:
        print(json.dumps({k: v for k, v in ev.summary.items()}))
    else:
        for k, v in ev.summary.items():
            print(f"{k:<18} {v:.3f}" if isinstance(v, float) else f"{k:<18} {v}")
        print("\nweakest intents:\n" + ev.per_intent.head(5).to_string())
        print("\nmost confused:\n" + ev.confused_pairs.head(5).to_string(index=False))
    return 0


def _predict(args) -> int:
    from ..nlu import IntentClassifier

    try:
        model = IntentClassifier.load(_model_file(args.model))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    for text in args.texts:
        d = model.decide(text)
        alts = ", ".join(f"{i} {p:.2f}" for i, p in d.alternatives)
        print(
            f"{text}\t{d.intent}\t{d.confidence:.2f}\t[{alts}]\t{d.source}{':' + d.rule if d.rule else ''}"
        )
    return 0
