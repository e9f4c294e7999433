"""Preprocessing of incoming text: @mentions, control characters, full-width forms, dates."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

__all__ = ["preprocess", "PreprocessError"]

_MENTION = re.compile(r"(^|\s)@[^\s@]{1,40}\s?")
_CONTROL = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufffd]"
)
_SPACES = re.compile(r"[ \t\u3000]+")
_CN_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]")
_SLASH_DATE = re.compile(r"\b(\d{4})/(\d{1,2})/(\d{1,2})\b")


class PreprocessError(ValueError):
    """Text that cannot be processed (over the size limit)."""


def _iso(m: re.Match) -> str:
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return m[0]


def preprocess(text: str, max_chars: int = 4000, at_names: list[str] | None = None) -> str:
    """Strip @mentions, control and invalid characters; NFKC (full-width -> half-width);
    unambiguous dates (2026年12月3日, 2026/12/3) to ISO; trims space. Raises
    :class:`PreprocessError` over ``max_chars``."""
    if len(text) > max_chars:
        raise PreprocessError(f"text has {len(text)} characters, limit {max_chars}")
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text)
    for name in at_names or []:
        text = text.replace(f"@{name}", " ")
    text = _MENTION.sub(" ", text)
    text = _CN_DATE.sub(_iso, text)
    text = _SLASH_DATE.sub(_iso, text)
    return _SPACES.sub(" ", text).strip()
