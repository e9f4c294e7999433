"""Labelled-utterance datasets: loading, validation, splitting, language tags, CLINC150.

Names are imported on first use: ``dingskill.datasets.language`` (used by the runtime) must not
pull in pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Dataset",
    "DatasetError",
    "ValidationReport",
    "detect_language",
    "fetch_clinc150",
    "load",
]

_LAZY = {
    "Dataset": ".dataset",
    "DatasetError": ".errors",
    "ValidationReport": ".validate",
    "detect_language": ".language",
    "fetch_clinc150": ".clinc",
    "load": ".loaders",
}

if TYPE_CHECKING:  # pragma: no cover
    from .clinc import fetch_clinc150
    from .dataset import Dataset
    from .errors import DatasetError
    from .language import detect_language
    from .loaders import load
    from .validate import ValidationReport


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dingskill.datasets' has no attribute {name!r}")
