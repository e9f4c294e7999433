"""Per-utterance language tags: ``zh``, ``en`` or ``mixed`` (the rule lives in
:mod:`dingskill.text`, shared by every layer)."""

from __future__ import annotations

from ..text import detect_language

__all__ = ["detect_language"]
