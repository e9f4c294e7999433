"""The default classifier on English and Chinese intent data the team has not seen, against a
plain TF-IDF + LinearSVC trained in the same run.

    python bench/unseen.py [--folds 5] [--json]

Data: the ``chatterbot-corpus`` package (BSD-3-Clause, ``pip install chatterbot-corpus``;
no download at run time): one YAML file per topic and language; the first user line of
each conversation is an utterance, its file (``greetings``, ``money``, ``science``, …) the
intent. Topics with fewer than 8 conversations are dropped. Nothing of it was used while
building or tuning dingskill. Protocol: stratified ``--folds``-fold cross-validation (seed
0), accuracy over all held-out utterances (there is no out-of-scope class here). Rows:

* ``baseline``: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)``
  + ``LinearSVC(C=1)`` (character n-grams: the plain choice that works for Chinese too);
* ``default``: ``IntentClassifier()`` as shipped (its oos threshold and novelty gate may
  refuse some utterances, which count as wrong);
* ``default, no oos``: ``IntentClassifier(oos_threshold=None)`` (classification only);
* ``n-grams only``: ``IntentClassifier(embeddings=None, oos_threshold=None)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

MIN_PER_TOPIC = 8


def corpus(language: str) -> tuple[list[str], list[str]]:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None:
        raise SystemExit("needs the chatterbot-corpus package: pip install chatterbot-corpus")
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
        "default, no oos": lambda: IntentClassifier(oos_threshold=None),
        "n-grams only": lambda: IntentClassifier(embeddings=None, oos_threshold=None),
    }


def cross_validate(texts, labels, folds: int) -> dict[str, float]:
    X, y = np.array(texts, dtype=object), np.array(labels)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    right = dict.fromkeys(models(), 0)
    for tr, te in skf.split(X, y):
        for name, make in models().items():
            pred = make().fit(list(X[tr]), list(y[tr])).predict(list(X[te]))
            right[name] += int(np.sum(np.asarray(pred) == y[te]))
    return {name: round(100.0 * r / len(y), 2) for name, r in right.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {}
    for lang in ("english", "chinese"):
        texts, labels = corpus(lang)
        res = cross_validate(texts, labels, args.folds)
        out[f"chatterbot-{lang}"] = {"n": len(texts), "intents": len(set(labels)), **res}
    names = list(models())
    print(f"{'dataset':<20}{'n':>6}{'intents':>8}" + "".join(f"{n:>17}" for n in names))
    for ds, r in out.items():
        print(f"{ds:<20}{r['n']:>6}{r['intents']:>8}" + "".join(f"{r[n]:>17}" for n in names))
    if args.json:
        print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
