"""dingskill: a Jupyter-driven skill development kit for DingTalk chat bots.

The top-level names are imported lazily so that ``import dingskill`` and the CLI start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

OUT_OF_SCOPE = "oos"

__all__ = [
    "OUT_OF_SCOPE",
    "Dataset",
    "IntentClassifier",
    "Skill",
    "__version__",
    "evaluate",
    "respond",
]

_LAZY = {
    "IntentClassifier": ("dingskill.nlu.classifier", "IntentClassifier"),
    "Dataset": ("dingskill.datasets.dataset", "Dataset"),
    "evaluate": ("dingskill.evaluation.report", "evaluate"),
    "Skill": ("dingskill.skills.skill", "Skill"),
    "respond": ("dingskill.runtime.local", "respond"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .datasets.dataset import Dataset
    from .evaluation.report import evaluate
    from .nlu.classifier import IntentClassifier
    from .runtime.local import respond
    from .skills.skill import Skill


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dingskill' has no attribute {name!r}")
