"""Notebook widgets: the chat widget, dataset / evaluation views, regression cases."""

from .chat import ChatWidget
from .regression import assert_conversations, replay_cases
from .views import compare_view, confusion_view, dataset_view, threshold_view

__all__ = [
    "ChatWidget",
    "assert_conversations",
    "compare_view",
    "confusion_view",
    "dataset_view",
    "replay_cases",
    "threshold_view",
]
