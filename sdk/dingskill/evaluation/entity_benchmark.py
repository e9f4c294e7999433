"""Entity benchmark: SNIPS (English) and CAIS (Chinese) span-annotated JSONL data.

Protocol, per dataset: train the default :class:`~dingskill.nlu.classifier.IntentClassifier`
and the default :class:`~dingskill.nlu.entity_extractor.EntityExtractor` on ``train.jsonl``;
predict the test intents, then the test entities with those intents (as the runtime does);
score exact span + type micro / macro F1 on ``test.jsonl``. ``baseline_micro_f1`` is a plain
linear-chain CRF (``EntityExtractor(features="plain")``: per-character / per-token features)
trained in the same run on the same data. Then time, per test utterance, one ``decide`` plus
one entity ``predict`` (caches emptied first). F1 and accuracy are percentages.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "EntityBenchmarkDataError", "entities_benchmark", "score_pair"]

DATASETS = {"snips": "en", "cais": "zh"}  # folder under the data home -> language
_ENTITY_ERRORS = re.compile(
    r": error (bad-annotation|span-out-of-range|span-mismatch|overlapping-entities|bad-entity-type):"
)


class EntityBenchmarkDataError(RuntimeError):
    """The benchmark data is not where it was looked for (the message says what to do)."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _files(data_home, name: str) -> tuple[Path, Path]:
    folder = Path(data_home) / name
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    if not (train.is_file() and test.is_file()):
        raise EntityBenchmarkDataError(
            f"no {name} data: expected {folder.resolve()}/train.jsonl and test.jsonl; "
            f"pass --data-home DIR, the folder holding {'/ and '.join(DATASETS)}/ "
            "(../shared/datasets beside the project), or --train FILE --test FILE --name NAME"
        )
    return train, test


def score_pair(
    train_path, test_path, name: str = "", progress: bool = True, embeddings="default"
) -> dict:
    """Train on one span-annotated JSONL file, score on another: the figures of one dataset.
    ``embeddings``: the intent classifier's embedding block ("default", a name or None)."""
    from ..datasets import DatasetError, load
    from ..nlu.classifier import IntentClassifier
    from ..nlu.entity_extractor import EntityExtractor
    from .entity_metrics import entity_metrics

    def say(step: str) -> None:
        if progress:
            print(f"{name}: {step}", file=sys.stderr, flush=True)

    for p in (train_path, test_path):
        if not Path(p).is_file():
            raise EntityBenchmarkDataError(f"{p}: file not found (a JSONL file with entity spans)")
    try:
        train, test = load(train_path, format="jsonl"), load(test_path, format="jsonl")
    except DatasetError as exc:
        raise EntityBenchmarkDataError(str(exc)) from None
    for ds, p in ((train, train_path), (test, test_path)):
        bad = [x for x in ds.validate(min_examples=1).lines() if _ENTITY_ERRORS.search(x)]
        if bad:
            raise EntityBenchmarkDataError(
                f"{len(bad)} entity annotation error(s) (dingskill datasets validate {p}), "
                f"first: {bad[0]}"
            )
        if not ds.has_entities:
            raise EntityBenchmarkDataError(f"{p}: no entity annotations (an 'entities' list)")
    say(f"training the intent classifier on {len(train):,} utterances")
    t0 = time.perf_counter()
    kw = {} if embeddings == "default" else {"embeddings": embeddings}
    clf = IntentClassifier(oos_threshold=None, **kw).fit(train.texts, train.intents)
    intent_seconds = time.perf_counter() - t0
    say(f"intents trained in {intent_seconds:.1f} s; training the entity extractor")
    t0 = time.perf_counter()
    ext = EntityExtractor().fit(train.texts, train.entities, train.intents)
    entity_seconds = time.perf_counter() - t0
    say(f"entities trained in {entity_seconds:.1f} s; training the plain CRF baseline")
    base = EntityExtractor(features="plain").fit(train.texts, train.entities)
    intents = [str(x) for x in clf.predict(test.texts)]
    intent_accuracy = 100.0 * float(np.mean(np.array(intents) == np.array(test.intents)))
    ev = entity_metrics(test.texts, test.entities, ext.predict(test.texts, intents))
    ev_base = entity_metrics(test.texts, test.entities, base.predict(test.texts))
    say(f"scored; timing decide() + entities on {len(test):,} utterances")
    for text in test.texts[:100]:  # warm-up
        ext.predict([text], [clf.decide(text).intent])
    clf.clear_cache()
    lat = np.empty(len(test))
    ent_lat = np.empty(len(test))
    for i, text in enumerate(test.texts):
        s = time.perf_counter()
        intent = clf.decide(text).intent
        m = time.perf_counter()
        ext.predict([text], [intent])
        e = time.perf_counter()
        lat[i], ent_lat[i] = e - s, e - m
    return {
        "micro_f1": round(100 * ev.summary["micro_f1"], 2),
        "macro_f1": round(100 * ev.summary["macro_f1"], 2),
        "baseline_micro_f1": round(100 * ev_base.summary["micro_f1"], 2),
        "partial_micro_f1": round(100 * ev.summary["partial_micro_f1"], 2),
        "intent_accuracy": round(intent_accuracy, 2),
        "train_seconds": round(intent_seconds + entity_seconds, 2),
        "entity_train_seconds": round(entity_seconds, 2),
        "predict_p50_ms": round(1000 * float(np.percentile(lat, 50)), 4),
        "predict_p99_ms": round(1000 * float(np.percentile(lat, 99)), 4),
        "entity_predict_p50_ms": round(1000 * float(np.percentile(ent_lat, 50)), 4),
        "entity_predict_p99_ms": round(1000 * float(np.percentile(ent_lat, 99)), 4),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "train_utterances": len(train),
        "test_utterances": len(test),
    }


def entities_benchmark(
    data_home=None,
    datasets=tuple(DATASETS),
    train=None,
    test=None,
    name: str | None = None,
    progress: bool = True,
    embeddings="default",
) -> dict:
    """``{"datasets": {name: figures}}`` for SNIPS and CAIS under ``data_home`` (default
    ``../shared/datasets``), or for one ``train`` / ``test`` pair of JSONL files as ``name``.

    Every dataset is checked before any training starts, so a missing folder fails at once."""
    if (train is None) != (test is None):
        raise EntityBenchmarkDataError("give both --train FILE and --test FILE (and --name)")
    if train is not None:
        pairs = {name or Path(train).parent.name or "custom": (Path(train), Path(test))}
    else:
        home = Path(data_home) if data_home is not None else Path("..") / "shared" / "datasets"
        pairs = {n: _files(home, n) for n in datasets}
    return {
        "datasets": {
            n: score_pair(tr, te, n, progress=progress, embeddings=embeddings)
            for n, (tr, te) in pairs.items()
        }
    }
