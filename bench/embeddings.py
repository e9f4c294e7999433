"""What the static embedding block brings: the default classifier with and without it.

    python bench/embeddings.py [--data-home ../shared/datasets/clinc150] [--json]

For each sample dataset of this project (Chinese and English: train on ``utterances.csv``,
score ``test.csv`` with the automatic oos threshold) and, when ``--data-home`` is given, for
CLINC150 "full" (``dingskill bench clinc150`` protocol), prints in-scope accuracy and oos
recall (%) with ``embeddings=None`` and with the default table. The last line is one JSON
object with ``--json``: ``{dataset: {"none": {...}, "default": {...}}}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dingskill import IntentClassifier, evaluate
from dingskill.datasets import load
from dingskill.evaluation.benchmark import clinc150_benchmark
from dingskill.nlu.embeddings import DEFAULT_EMBEDDINGS

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ["office-zh", "it-helpdesk-zh", "office-en", "smalltalk-en"]


def sample(name: str, embeddings) -> dict:
    train = load(ROOT / "datasets" / name / "utterances.csv")
    test = load(ROOT / "datasets" / name / "test.csv")
    model = IntentClassifier(embeddings=embeddings, random_state=0).fit(train.texts, train.intents)
    s = evaluate(model, test, sweep=False).summary
    recall = s["oos_recall"]
    return {
        "in_scope_accuracy": round(100 * s["in_scope_accuracy"], 2),
        "oos_recall": None if recall != recall else round(100 * recall, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-home", default=None, help="CLINC150 folder (optional)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, dict] = {}
    for name in SAMPLES:
        out[name] = {"none": sample(name, None), "default": sample(name, DEFAULT_EMBEDDINGS)}
    if args.data_home:
        keys = ("in_scope_accuracy", "oos_recall")
        out["clinc150"] = {
            label: {k: r[k] for k in keys}
            for label, r in (
                ("none", clinc150_benchmark(args.data_home, progress=False, embeddings=None)),
                ("default", clinc150_benchmark(args.data_home, progress=False)),
            )
        }
    print(f"{'dataset':<16}{'in-scope none':>15}{'default':>9}{'oos rec none':>14}{'default':>9}")
    for name, r in out.items():
        n, d = r["none"], r["default"]
        print(
            f"{name:<16}{n['in_scope_accuracy']:>15}{d['in_scope_accuracy']:>9}"
            f"{n['oos_recall']!s:>14}{d['oos_recall']!s:>9}"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
