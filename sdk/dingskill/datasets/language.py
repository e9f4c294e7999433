"""Per-utterance language tags: ``zh``, ``en`` or ``mixed``."""

from __future__ import annotations

import re

__all__ = ["detect_language"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> str:
    """``zh`` when CJK characters dominate, ``en`` for Latin letters, ``mixed`` when both
    carry weight (a Latin word counts as much as one Chinese character)."""
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0 and latin_words == 0:
        return "en" if not text.strip() else ("zh" if cjk else "en")
    if cjk == 0:
        return "en"
    if latin_words == 0:
        return "zh"
    share = cjk / (cjk + latin_words)
    return "zh" if share >= 0.75 else ("en" if share <= 0.25 else "mixed")
