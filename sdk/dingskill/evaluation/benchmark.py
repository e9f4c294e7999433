"""CLINC150 benchmark for :class:`~dingskill.nlu.classifier.IntentClassifier`.

Protocol (the paper's "oos-threshold", with oos-train rows allowed): fit with default
settings on ``train`` + ``oos_train``; choose the confidence threshold on ``val`` +
``oos_val`` (:meth:`IntentClassifier.tune_threshold`); report in-scope accuracy on ``test``
and out-of-scope recall on ``oos_test``; then time single-utterance ``decide`` calls (which
include probabilities and the oos decision) and batch ``predict``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..nlu.embeddings import DEFAULT_EMBEDDINGS

__all__ = ["BenchmarkDataError", "clinc150_benchmark", "load_clinc150"]

SHA256 = {
    "full": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
    "small": "050e17476e6b4fa88f8518edaf09921c8f5e3a86dc8b63615361102a20b2ac01",
    "imbalanced": "4886730b20c51eece26aa392ecae2717bfe9908680419e96255351c6148eb4cc",
    "oos_plus": "bfcca9ae515623541dc1983c94c4ed7cae9d26b42ae47d74b972e51bb6f7a21f",
}
_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")


class BenchmarkDataError(RuntimeError):
    """The CLINC150 data is missing, has the wrong checksum or the wrong layout."""


def load_clinc150(data_home=None, variant: str = "full") -> dict[str, list[tuple[str, str]]]:
    """Read ``data_<variant>.json`` from ``data_home`` (or ``$DINGSKILL_DATA``), checksum verified."""
    if variant not in SHA256:
        raise BenchmarkDataError(f"unknown variant {variant!r}; choose one of {sorted(SHA256)}")
    home = data_home or os.environ.get("DINGSKILL_DATA")
    if not home:
        raise BenchmarkDataError(
            "no CLINC150 folder: pass data_home / --data-home or set DINGSKILL_DATA"
        )
    path = Path(home) / f"data_{variant}.json"
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: file not found")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[variant]:
        raise BenchmarkDataError(f"{path}: sha256 {digest} does not match {SHA256[variant]}")
    data = json.loads(raw)
    out = {}
    for split in _SPLITS:
        rows = data.get(split)
        if not isinstance(rows, list):
            raise BenchmarkDataError(f"{path}: split {split!r} missing or not a list")
        out[split] = [(str(t), str(lab)) for t, lab in rows]
    return out


def clinc150_benchmark(
    data_home=None, variant: str = "full", progress: bool = True, embeddings=DEFAULT_EMBEDDINGS
) -> dict:
    """Train, tune, score and time the default classifier on CLINC150; figures in a dict.

    ``embeddings``: the classifier's embedding table, or None for n-grams only (to measure
    what the embedding block brings).
    """
    from tqdm.auto import tqdm

    from .. import OUT_OF_SCOPE
    from ..nlu.classifier import IntentClassifier

    def say(step: str) -> None:
        if progress:
            print(f"clinc150: {step}", file=sys.stderr, flush=True)

    # a bar only on a terminal: a log or CI output gets the step lines above, not bar frames
    steps = tqdm(
        total=5, desc="clinc150", disable=not progress or not sys.stderr.isatty(), file=sys.stderr
    )
    data = load_clinc150(data_home, variant)
    steps.update(1)

    train = data["train"] + data["oos_train"]
    say(f"training on {len(train):,} utterances (embeddings: {embeddings})")
    t0 = time.perf_counter()
    clf = IntentClassifier(embeddings=embeddings).fit(
        [t for t, _ in train], [lab for _, lab in train]
    )
    train_seconds = time.perf_counter() - t0
    say(f"trained in {train_seconds:.1f} s; choosing the threshold on val + oos_val")
    steps.update(1)

    val = data["val"] + data["oos_val"]
    clf.tune_threshold([t for t, _ in val], [lab for _, lab in val])
    steps.update(1)

    test_texts = [t for t, _ in data["test"]]
    test_labels = np.array([lab for _, lab in data["test"]])
    pred = clf.predict(test_texts)
    in_scope_accuracy = 100.0 * float(np.mean(pred == test_labels))
    oos_pred = clf.predict([t for t, _ in data["oos_test"]])
    oos_recall = 100.0 * float(np.mean(oos_pred == OUT_OF_SCOPE))
    steps.update(1)

    all_test = test_texts + [t for t, _ in data["oos_test"]]
    say(f"scored; timing decide() on {len(all_test):,} utterances, then one batch predict()")
    for text in all_test[:200]:  # warm-up
        clf.decide(text)
    clf.clear_cache()  # cold decisions: nothing in the decision or encoding caches
    lat = np.empty(len(all_test))
    for i, text in enumerate(all_test):
        s = time.perf_counter()
        clf.decide(text)
        lat[i] = time.perf_counter() - s
    clf.clear_cache()
    t0 = time.perf_counter()
    clf.predict(all_test)
    batch_seconds = time.perf_counter() - t0
    steps.update(1)
    steps.close()
    return {
        "in_scope_accuracy": round(in_scope_accuracy, 2),
        "oos_recall": round(oos_recall, 2),
        "train_seconds": round(train_seconds, 2),
        "predict_p50_ms": round(1000 * float(np.percentile(lat, 50)), 4),
        "predict_p99_ms": round(1000 * float(np.percentile(lat, 99)), 4),
        "batch_utterances_per_s": round(len(all_test) / batch_seconds, 1),
    }
