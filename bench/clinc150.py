"""CLINC150 benchmark (thin wrapper over ``dingskill bench clinc150``) plus calibration.

    python bench/clinc150.py --data-home ../shared/datasets/clinc150 [--calibration]

Prints the benchmark dict as one JSON object on its last line. With ``--calibration`` it
also fits the default classifier once more on ``train`` + ``oos_train`` and adds the
expected calibration error (15 bins, %) of ``predict_proba`` on ``test`` + ``oos_test``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from dingskill.evaluation.benchmark import clinc150_benchmark, load_clinc150


def calibration(data_home, variant: str) -> dict:
    from dingskill import IntentClassifier
    from dingskill.nlu.calibration import expected_calibration_error

    data = load_clinc150(data_home, variant)
    train = data["train"] + data["oos_train"]
    clf = IntentClassifier().fit([t for t, _ in train], [lab for _, lab in train])
    test = data["test"] + data["oos_test"]
    proba = clf.predict_proba([t for t, _ in test])
    correct = clf.classes_[proba.argmax(axis=1)] == np.array([lab for _, lab in test])
    return {
        "ece_percent": round(100 * expected_calibration_error(proba, correct), 2),
        "temperature": round(clf.temperature_, 4),
        "auto_threshold": round(clf.threshold_, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--variant", default="full")
    ap.add_argument("--calibration", action="store_true")
    args = ap.parse_args()
    result = clinc150_benchmark(args.data_home, args.variant, progress=False)
    if args.calibration:
        result.update(calibration(args.data_home, args.variant))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
