"""Notebook widgets: the chat widget, dataset / evaluation views, regression cases.

Names are imported on first use: the regression cases (``dingskill test-conversations``,
``dingskill schema conversations``) work without the ``notebook`` extra (ipywidgets).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ChatWidget",
    "assert_conversations",
    "compare_view",
    "confusion_view",
    "dataset_view",
    "replay_cases",
    "run_conversations",
    "threshold_view",
]

_LAZY = {
    "ChatWidget": ".chat",
    "assert_conversations": ".regression",
    "replay_cases": ".regression",
    "run_conversations": ".conversation_report",
    "compare_view": ".views",
    "confusion_view": ".views",
    "dataset_view": ".views",
    "threshold_view": ".views",
}

if TYPE_CHECKING:  # pragma: no cover
    from .chat import ChatWidget
    from .conversation_report import run_conversations
    from .regression import assert_conversations, replay_cases
    from .views import compare_view, confusion_view, dataset_view, threshold_view


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dingskill.notebook' has no attribute {name!r}")
