"""The default classifier on English and Chinese intent data the team has not seen, against a
plain TF-IDF + LinearSVC trained in the same run.

    python bench/unseen.py [--folds 5] [--languages english chinese] [--json]

Data: the ``chatterbot-corpus`` package (BSD-3-Clause; ``make setup`` installs it, the ``bench`` extra;
no download at run time): one YAML file per topic and language; the first user line of
each conversation is an utterance, its file (``greetings``, ``money``, ``science``, …) the
intent. Topics with fewer than 8 conversations are dropped. Nothing of it was used while
building or tuning dingskill. Protocol: stratified ``--folds``-fold cross-validation (seed
0), accuracy over all held-out utterances (there is no out-of-scope class here). Rows:

* ``baseline``: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)``
  + ``LinearSVC(C=1)`` (character n-grams: the plain choice that works for Chinese too);
* ``default, closed set``: ``IntentClassifier(oos_threshold=None)``: the default features and
  model, every utterance classified, like the baseline (the comparison the targets are about);
* ``n-grams only``: ``IntentClassifier(embeddings=None, oos_threshold=None)``;
* ``default``: ``IntentClassifier()`` as shipped: its oos threshold and novelty gate refuse
  utterances unlike the training data (this data has no out-of-scope class, so a refusal
  counts as wrong here). Also reported: the share it answers, the accuracy of those answers,
  and the baseline's accuracy when it too answers only that many, its most confident ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import yaml
from dingskill import OUT_OF_SCOPE
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

MIN_PER_TOPIC = 8


def corpus(language: str) -> tuple[list[str], list[str]]:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None:
        raise SystemExit(
            "needs the chatterbot-corpus package: pip install 'dingskill[bench]' (make setup does)"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "data" / language
    texts, labels = [], []
    for f in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        rows = [c[0] for c in doc.get("conversations", []) if c and isinstance(c[0], str)]
        if len(rows) >= MIN_PER_TOPIC:
            texts += [r.strip() for r in rows]
            labels += [f.stem] * len(rows)
    return texts, labels


def models():
    from dingskill import IntentClassifier

    return {
        "baseline": lambda: make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True),
            LinearSVC(C=1.0),
        ),
        "default": lambda: IntentClassifier(),
        "default, closed set": lambda: IntentClassifier(oos_threshold=None),
        "n-grams only": lambda: IntentClassifier(embeddings=None, oos_threshold=None),
    }


def cross_validate(texts, labels, folds: int) -> dict[str, float]:
    """Closed-set accuracy % of every model, plus the shipped default's answered share and the
    accuracy of what it answers, against the baseline refusing as many of its own least
    confident utterances in each fold (the like-for-like comparison of a bot that refuses)."""
    X, y = np.array(texts, dtype=object), np.array(labels)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    right = dict.fromkeys(models(), 0)
    answered = answered_right = base_answered_right = 0
    for tr, te in skf.split(X, y):
        preds = {}
        for name, make in models().items():
            model = make().fit(list(X[tr]), list(y[tr]))
            preds[name] = np.asarray(model.predict(list(X[te])))
            if name == "baseline":
                margin = np.max(model.decision_function(list(X[te])), axis=1)
            if name != "default":
                right[name] += int(np.sum(preds[name] == y[te]))
        shipped = preds["default"]
        kept = shipped != OUT_OF_SCOPE
        answered += int(kept.sum())
        answered_right += int(np.sum(shipped[kept] == y[te][kept]))
        base_kept = np.argsort(-margin, kind="stable")[: int(kept.sum())]
        base_answered_right += int(np.sum(preds["baseline"][base_kept] == y[te][base_kept]))
        right["default"] += int(np.sum(shipped == y[te]))
    out = {name: round(100.0 * r / len(y), 2) for name, r in right.items()}
    out["default answered %"] = round(100.0 * answered / len(y), 2)
    out["default, accuracy of answers"] = round(100.0 * answered_right / max(answered, 1), 2)
    out["baseline, same coverage"] = round(100.0 * base_answered_right / max(answered, 1), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--languages", nargs="+", default=["english", "chinese"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = {}
    for lang in args.languages:
        texts, labels = corpus(lang)
        res = cross_validate(texts, labels, args.folds)
        out[f"chatterbot-{lang}"] = {"n": len(texts), "intents": len(set(labels)), **res}
    names = [*models(), "default answered %", "default, accuracy of answers"]
    names.append("baseline, same coverage")
    head = "".join(f"{n:>{len(n) + 2}}" for n in names)
    print(f"{'dataset':<20}{'n':>6}{'intents':>8}" + head)
    for ds, r in out.items():
        row = "".join(f"{r[n]:>{len(n) + 2}}" for n in names)
        print(f"{ds:<20}{r['n']:>6}{r['intents']:>8}" + row)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
