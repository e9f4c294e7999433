"""The model folder ``dingskill train`` writes, as a library API:

```
model.dsm          the IntentClassifier (pickle-free, nlu/persistence.py)
entities.dse       the EntityExtractor, when the data annotates entities (no pickle either)
evaluation.json    EvaluationReport.to_json() on the held-out data
meta.json          what it was trained on: data path and SHA-256, split, seed, sizes,
                   per-intent counts, threshold, the training-rows fingerprint
```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .report import EvaluationReport

__all__ = [
    "ENTITY_MODEL_FILE",
    "EVALUATION_FILE",
    "META_FILE",
    "MODEL_FILE",
    "ModelFolder",
    "load_model_folder",
    "model_file",
    "entity_model_file",
    "save_model_folder",
    "training_fingerprint",
]

MODEL_FILE, EVALUATION_FILE, META_FILE = "model.dsm", "evaluation.json", "meta.json"
ENTITY_MODEL_FILE = "entities.dse"


def training_fingerprint(texts: Iterable[str], intents: Iterable[str]) -> str:
    """SHA-256 of the normalised, sorted ``text<TAB>intent`` rows (order-independent)."""
    from ..nlu.normalize import normalize_text

    rows = sorted(f"{normalize_text(t)}\t{i}" for t, i in zip(texts, intents, strict=True))
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


@dataclass
class ModelFolder:
    """A trained model with its evaluation and training record."""

    model: object  # dingskill.IntentClassifier
    evaluation: EvaluationReport | None = None
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    entity_model: object | None = None  # dingskill.nlu.EntityExtractor


def save_model_folder(
    folder, model, evaluation: EvaluationReport | None, meta: dict, entity_model=None
) -> Path:
    """Write ``model.dsm``, ``entities.dse`` (with an entity model), ``evaluation.json``
    (when given) and ``meta.json`` to ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    if entity_model is not None:
        entity_model.save(out / ENTITY_MODEL_FILE)
    elif (out / ENTITY_MODEL_FILE).exists():
        (out / ENTITY_MODEL_FILE).unlink()  # an older run's: not this model's
    if evaluation is not None:
        (out / EVALUATION_FILE).write_text(evaluation.to_json(), encoding="utf-8")
    (out / META_FILE).write_text(
        json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8"
    )
    return out


def model_file(path) -> Path:
    """The ``model.dsm`` of a model folder (or ``path`` itself when it is the file)."""
    p = Path(path)
    f = p / MODEL_FILE if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no model here (train one with: dingskill train DATA -o {p})")
    return f


def entity_model_file(path) -> Path | None:
    """The ``entities.dse`` beside a model folder's ``model.dsm`` (None when there is none)."""
    p = Path(path)
    f = p / ENTITY_MODEL_FILE if p.is_dir() else p.parent / ENTITY_MODEL_FILE
    return f if f.is_file() else None


def load_model_folder(path) -> ModelFolder:
    """Read a model folder (a bare ``.dsm`` file gives a ModelFolder without evaluation)."""
    from ..nlu import EntityExtractor, IntentClassifier

    f = model_file(path)
    folder = f.parent
    ev = meta = None
    if (folder / EVALUATION_FILE).is_file() and f.name == MODEL_FILE:
        ev = EvaluationReport.from_json((folder / EVALUATION_FILE).read_text(encoding="utf-8"))
    if (folder / META_FILE).is_file() and f.name == MODEL_FILE:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    ents = entity_model_file(folder) if f.name == MODEL_FILE else None
    return ModelFolder(
        IntentClassifier.load(f),
        ev,
        meta or {},
        folder,
        EntityExtractor.load(ents) if ents is not None else None,
    )
