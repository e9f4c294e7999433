"""``dingskill train``, ``dingskill evaluate`` and ``dingskill predict``: the NLU from the shell.

::

    dingskill train datasets/office-zh/utterances.csv -o models/office-zh
    dingskill evaluate models/office-zh datasets/office-zh/test.csv --html report.html
    dingskill predict models/office-zh "明天想请一天假" "book a meeting room"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from .._version import __version__

SUMMARY_KEYS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision")


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train an intent classifier (and an entity extractor when the data annotates "
        "entities) on a dataset",
    )
    t.add_argument("data", help="csv / tsv / jsonl / CLINC json / Rasa yaml")
    t.add_argument("-o", "--output", required=True, help="model folder to write")
    t.add_argument("--text-col", default="text", help="column holding the utterance")
    t.add_argument("--intent-col", default="intent", help="column holding the label")
    t.add_argument("--threshold", default="auto", help="auto | none | a number in [0, 1]")
    t.add_argument("--rules", default=None, help="YAML list of {intent, words, patterns}")
    t.add_argument("--test", default=None, help="held-out file (default: a stratified split)")
    t.add_argument(
        "--test-size", type=float, default=0.2, help="held-out share without --test (0.2)"
    )
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument(
        "--embeddings",
        default="default",
        help="embedding block: 'default', 'none', a name (use-m3, wordllama-l2-64, "
        "wordllama-l2-256) or model2vec:FOLDER / onnx:FOLDER",
    )
    t.set_defaults(func=_train)
    e = sub.add_parser("evaluate", help="evaluate a trained model folder on a dataset")
    e.add_argument("model", help="model folder (with model.dsm) or a .dsm file")
    e.add_argument("data", help="labelled test data (csv / tsv / jsonl / ...)")
    e.add_argument("--text-col", default="text", help="column holding the utterance")
    e.add_argument("--intent-col", default="intent", help="column holding the label")
    e.add_argument(
        "--cv",
        type=int,
        default=0,
        help="also cross-validate with K folds on the training data (--train, else the file "
        "the model was trained on, from its meta.json)",
    )
    e.add_argument("--train", default=None, help="training data for --cv")
    e.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    e.add_argument("--html", default=None, help="also write an HTML report here")
    e.set_defaults(func=_evaluate)
    p = sub.add_parser("predict", help="classify utterances with a trained model folder")
    p.add_argument("model", help="model folder (with model.dsm) or a .dsm file")
    p.add_argument("texts", nargs="+", help="utterances to classify")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    p.set_defaults(func=_predict)


def embeddings_option(value: str):
    """``--embeddings`` value -> the ``IntentClassifier(embeddings=...)`` argument."""
    from ..nlu.embeddings import DEFAULT_EMBEDDINGS

    if value == "default":
        return DEFAULT_EMBEDDINGS
    return None if value.lower() == "none" else value


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _threshold(value: str):
    if value == "auto":
        return "auto"
    if value.lower() == "none":
        return None
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 <= x <= 1:
        raise ValueError(f"--threshold must be auto, none or a number in [0, 1], got {value!r}")
    return x


def _load_rules(path: str | None) -> list | None:
    """Rules from a YAML file: a list of {intent, words, patterns} or {"rules": [...]}."""
    if path is None:
        return None
    import yaml

    from ..nlu.rules import RuleError, validate_rules

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{p}: cannot read rules: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ValueError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if isinstance(doc, dict) and set(doc) == {"rules"}:
        doc = doc["rules"]
    try:
        return list(validate_rules(doc)) or None
    except RuleError as exc:
        raise ValueError(f"{p}: {exc}") from None


def _refuse_invalid(ds, path) -> bool:
    """Print validation findings; True when there are errors (training must not go on)."""
    report = ds.validate()
    if report.ok:
        return False
    for line in report.lines():
        if " error " in line:
            print(line, file=sys.stderr)
    print(
        f"error: {path} has {len(report.errors)} error(s); fix them before training "
        f"(dingskill datasets validate {path} lists warnings too)",
        file=sys.stderr,
    )
    return True


def _model_file(folder: str) -> Path:
    from ..evaluation.model_folder import model_file

    try:
        return model_file(folder)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


def _split(ds, args):
    """(train, test): a --test file, the data's own split column, or a stratified split."""
    from ..datasets import load

    if args.test:
        test = load(args.test, text_col=args.text_col, intent_col=args.intent_col)
        return ds, test, "file"
    if "split" in ds.df.columns:
        splits = set(ds.df["split"].astype(str))
        if "train" in splits and "test" in splits:
            return ds.subset("train"), ds.subset("test"), "column"
    split = ds.split(test_size=args.test_size, seed=args.seed)
    return split.subset("train"), split.subset("test"), "stratified"


def _print_summary(summary: dict, keys=(*SUMMARY_KEYS, "n", "n_intents"), out=None) -> None:
    out = out or sys.stdout
    for k in keys:
        v = summary.get(k)
        shown = "-" if v is None or (isinstance(v, float) and v != v) else v
        shown = f"{shown:.3f}" if isinstance(shown, float) else shown
        print(f"  {k:<18} {shown}", file=out)


def _train(args) -> int:
    from tqdm.auto import tqdm

    from ..datasets import DatasetError, load
    from ..evaluation import evaluate
    from ..evaluation.model_folder import save_model_folder, training_fingerprint
    from ..nlu import IntentClassifier

    out = Path(args.output)
    try:
        threshold = _threshold(args.threshold)
        rules = _load_rules(args.rules)
        ds = load(args.data, text_col=args.text_col, intent_col=args.intent_col)
    except (DatasetError, ValueError) as exc:
        return _err(str(exc))
    if _refuse_invalid(ds, args.data):
        return 1
    steps = tqdm(  # a bar only on a terminal (no bar frames in logs and CI output)
        total=3, desc="train", unit="step", file=sys.stderr, disable=not sys.stderr.isatty()
    )
    try:
        train, test, how = _split(ds, args)
        if args.test and _refuse_invalid(test, args.test):
            return 1
        steps.set_postfix_str(f"fit {len(train)} utterances")
        model = IntentClassifier(
            oos_threshold=threshold,
            rules=rules,
            random_state=args.seed,
            embeddings=embeddings_option(args.embeddings),
        )
        model.fit(train.texts, train.intents)
        entity_model = None
        if train.has_entities:
            from ..nlu import EntityExtractor

            steps.set_postfix_str(f"entities: fit {len(train)} utterances")
            entity_model = EntityExtractor(
                lookups=ds.lookups or None, synonyms=ds.synonyms or None
            ).fit(train.texts, train.entities, train.intents)
        steps.update(1)
        steps.set_postfix_str(f"evaluate on {len(test)}")
        ev = evaluate(
            model,
            test,
            name=str(args.data),
            entity_model=entity_model if test.has_entities else None,
        )
        steps.update(1)
    except (DatasetError, ValueError) as exc:
        steps.close()
        return _err(str(exc))
    counts = {str(k): int(v) for k, v in sorted(train.df["intent"].value_counts().items())}
    meta = {
        "dingskill": __version__,
        "data": str(args.data),
        "data_sha256": hashlib.sha256(Path(args.data).read_bytes()).hexdigest()
        if Path(args.data).is_file()
        else None,
        "test_data": str(args.test) if args.test else None,
        "split": how,
        "seed": args.seed,
        "sha256": training_fingerprint(train.texts, train.intents),
        "train_utterances": len(train),
        "test_utterances": len(test),
        "intents": len(set(train.intents) - {"oos"}),
        "intent_counts": counts,
        "threshold": model.threshold_,
        "rules": len(rules or []),
        "entity_types": train.entity_types,
    }
    save_model_folder(out, model, ev, meta, entity_model)
    steps.update(1)
    steps.close()
    th = "none" if model.threshold_ is None else f"{model.threshold_:.3f}"
    print(
        f"trained on {len(train)} utterances, {meta['intents']} intents (threshold {th}); "
        f"evaluated on {len(test)} ({how} split) -> {out}"
    )
    _print_summary(ev.summary)
    if entity_model is not None:
        print(f"entity extractor: {len(train.entity_types)} types -> {out / 'entities.dse'}")
        if ev.entities is not None:
            _print_summary(ev.entities.summary, ENTITY_KEYS)
    return 0


ENTITY_KEYS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "partial_micro_f1")


def _evaluate(args) -> int:
    from ..datasets import DatasetError, load
    from ..evaluation import evaluate
    from ..evaluation.model_folder import entity_model_file
    from ..nlu import EntityExtractor, EntityModelError, IntentClassifier, UnsafeModelError

    try:
        mf = _model_file(args.model)
        model = IntentClassifier.load(mf)
        ef = entity_model_file(mf)
        entity_model = EntityExtractor.load(ef) if ef is not None else None
        ds = load(args.data, text_col=args.text_col, intent_col=args.intent_col)
        train_path = _cv_training_data(args) if args.cv else None
        train = (
            load(train_path, text_col=args.text_col, intent_col=args.intent_col)
            if train_path
            else None
        )
        ev = evaluate(
            model,
            ds,
            cv=args.cv,
            train=train,
            progress=args.cv > 1,
            name=str(args.data),
            entity_model=entity_model if ds.has_entities else None,
        )
    except (DatasetError, UnsafeModelError, EntityModelError, ValueError, OSError) as exc:
        return _err(str(exc))
    if args.html:
        Path(args.html).write_text(ev.to_html(), encoding="utf-8")
    if args.json:
        out = dict(ev.to_dict()["summary"])
        if ev.cross_validation is not None:
            folds = ev.cross_validation
            out["cross_validation"] = {
                "data": str(train_path),
                "folds": json.loads(folds.to_json(orient="records")),
                "mean": {k: float(folds[k].mean()) for k in SUMMARY_KEYS if k in folds},
            }
        if ev.entities is not None:
            out["entities"] = {
                **ev.entities.summary,
                "per_type": json.loads(
                    ev.entities.per_type.reset_index().to_json(orient="records", force_ascii=False)
                ),
            }
        print(json.dumps(out, ensure_ascii=False, sort_keys=True))
        return 0
    print(f"{args.data} with {args.model}:")
    _print_summary(ev.summary)
    if ev.cross_validation is not None:
        cv = ev.cross_validation[list(SUMMARY_KEYS)].mean()
        print(f"\n{args.cv}-fold cross-validation on {train_path} (mean over folds):")
        _print_summary(cv.to_dict(), SUMMARY_KEYS)
    print("\nweakest intents:\n" + ev.per_intent.head(5).round(3).to_string())
    if len(ev.confused_pairs):
        print("\nmost confused:\n" + ev.confused_pairs.head(5).to_string(index=False))
    if ev.entities is not None:
        print("\nentities (exact span + type):")
        _print_summary(ev.entities.summary, ENTITY_KEYS)
        print("\nweakest entity types:\n" + ev.entities.per_type.head(5).round(3).to_string())
        if len(ev.entities.confusions):
            print("\ntype confusions:\n" + ev.entities.confusions.head(5).to_string(index=False))
        if len(ev.entities.errors):
            print("\nworst entity errors:\n" + ev.entities.errors.head(5).to_string(index=False))
    if args.html:
        print(f"\nHTML report: {args.html}")
    return 0


def _cv_training_data(args) -> str:
    """The data to cross-validate on: ``--train``, else the model folder's training file."""
    if args.train:
        return args.train
    meta = Path(args.model) / "meta.json"
    data = None
    if meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8")).get("data")
    if not data or not Path(data).is_file():
        raise ValueError(
            "--cv cross-validates on training data, not on the test file: pass --train "
            f"TRAIN.csv ({meta} names no readable training file)"
        )
    return data


def _predict(args) -> int:
    from ..nlu import IntentClassifier, UnsafeModelError

    try:
        model = IntentClassifier.load(_model_file(args.model))
    except (UnsafeModelError, ValueError, OSError) as exc:
        return _err(str(exc))
    for text in args.texts:
        d = model.decide(text)
        if args.json:
            row = {
                "text": text,
                "intent": d.intent,
                "confidence": round(d.confidence, 4),
                "top": [[i, round(p, 4)] for i, p in d.alternatives],
                "source": d.source,
                "rule": d.rule,
            }
            print(json.dumps(row, ensure_ascii=False))
            continue
        alts = ", ".join(f"{i} {p:.2f}" for i, p in d.alternatives)
        why = f"rule {d.rule}" if d.rule else d.source
        print(f"{text}\t{d.intent}\t{d.confidence:.2f}\ttop3: {alts}\t{why}")
    return 0
