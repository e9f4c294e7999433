"""Text rules in one place: character classes (CJK, control and invalid characters),
the message normaliser, the feature fold, absolute date forms and the language detector.

Every layer uses these: datasets (language tags), nlu (features, rules), skills (slots,
language of a reply) and the runtime (preprocessing of every incoming message). This module
imports nothing of dingskill, so it sits below the lowest layer.

Two normal forms, for two jobs:

* :func:`clean_message` — what a user's message becomes before routing (the runtime's
  preprocessing): invalid and control characters removed, full-width letters, digits and
  symbols made half-width (Chinese punctuation such as ，。！？ kept as typed), @mentions
  removed, spaces collapsed. Words are never rewritten: entities (dates, numbers, ...) carry
  spans into this text and their canonical values (:mod:`dingskill.nlu.system_entities`).
  Templates, handlers and HTTP actions see this text.
* :func:`fold` — what the classifier's features and trigger rules compare: NFKC throughout,
  lower case, control characters as spaces, one space between words.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

__all__ = [
    "CJK_CHARS",
    "HAN_CHARS",
    "KEPT_FULLWIDTH",
    "clean_message",
    "dates_to_iso",
    "detect_language",
    "find_control",
    "fold",
    "is_cjk",
    "strip_mentions",
]

# Han ideographs (ext. A, basic, compatibility, ext. B-F): what makes text Chinese
HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# CJK scripts segmented as character runs by the features: Han, kana, Hangul
CJK_CHARS = f"\u3040-\u30ff{HAN_CHARS}\uac00-\ud7af"
_CJK_RE = re.compile(f"[{CJK_CHARS}]")
_HAN_RE = re.compile(f"[{HAN_CHARS}]")
_LATIN_WORD_RE = re.compile(r"[A-Za-z]+")

# C0/C1 controls, soft hyphen, zero-width and bidi format characters, line/paragraph
# separators, word joiners, BOM, interlinear annotation, object replacement and U+FFFD
# (the mark of bytes that were not valid text)
_CONTROL = (
    "\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffd"
)
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
# the same, but keeping tab and line breaks (a message may have several lines)
_CONTROL_KEEP_LINES_RE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffd]"
)
# full-width Chinese punctuation a message keeps as typed (NFKC would make it ASCII)
KEPT_FULLWIDTH = "，。！？：；（）、【】《》“”‘’…—～"
_KEPT_RE = re.compile(f"([{re.escape(KEPT_FULLWIDTH)}])")
_SPACES_RE = re.compile(r"[ \t\u3000]+")
_WS_RE = re.compile(r"\s+")
# "@name" at the start or after a space (a DingTalk @mention of the bot or of someone)
_MENTION_RE = re.compile(r"(?:^|(?<=\s))@[^\s@]{1,40}\s?")
# absolute dates: 2026年12月3日 / 2026年12月3号 / 2026年12月3, 2026/12/3, 2026.12.3, 2026-12-3
_DATE_RE = re.compile(
    r"(?<!\d)(\d{4})(?:年(\d{1,2})月(\d{1,2})[日号]?|([-/.])(\d{1,2})\4(\d{1,2}))(?!\d)"
)


def find_control(text: str) -> str | None:
    """The first control or invalid character in ``text`` (tab and line breaks allowed)."""
    m = _CONTROL_KEEP_LINES_RE.search(text)
    return m.group() if m else None


def is_cjk(text: str) -> bool:
    """True when ``text`` contains at least one CJK character (Han, kana or Hangul)."""
    return _CJK_RE.search(text) is not None


def fold(text: str) -> str:
    """The feature form of ``text``: NFKC, no control characters, lower case, single spaces."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL_RE.sub(" ", text)
    return _WS_RE.sub(" ", text.lower()).strip()


def _iso(m: re.Match) -> str:
    month, day = (m[2], m[3]) if m[2] else (m[5], m[6])
    try:
        return dt.date(int(m[1]), int(month), int(day)).isoformat()
    except ValueError:
        return m[0]  # not a calendar date: left as typed


def dates_to_iso(text: str) -> str:
    """Rewrite absolute dates (2026年12月3日, 2026/12/3, 2026.12.3, 2026-12-3) to ISO
    ``2026-12-03``; idempotent. The message itself is never rewritten (see
    :func:`clean_message`): this serves the word-list slot parsers of ``skills/slots.py``,
    which read ISO dates from a copy."""
    return _DATE_RE.sub(_iso, text)


def strip_mentions(text: str, at_names: list[str] | None = None) -> str:
    """Remove @mentions: every ``@name`` in ``at_names``, and any ``@word`` at the start of the
    text or after a space."""
    for name in at_names or []:
        text = text.replace(f"@{name}", " ")
    return _MENTION_RE.sub(" ", text)


def _half_width(text: str) -> str:
    # NFKC everywhere but on the Chinese punctuation kept as typed
    parts = _KEPT_RE.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def clean_message(text: str, at_names: list[str] | None = None) -> str:
    """The message normal form (see the module docstring)."""
    text = _half_width(text)
    text = _CONTROL_KEEP_LINES_RE.sub("", text)
    text = strip_mentions(text, at_names)
    return _SPACES_RE.sub(" ", text).strip()


def detect_language(text: str) -> str:
    """``zh`` when Han characters dominate, ``en`` for Latin letters, ``mixed`` when both
    carry weight (a Latin word counts as much as one Chinese character). Text with neither
    (empty, digits, emoji) is ``en``."""
    han = len(_HAN_RE.findall(text))
    latin_words = len(_LATIN_WORD_RE.findall(text))
    if han == 0:
        return "en"
    if latin_words == 0:
        return "zh"
    share = han / (han + latin_words)
    return "zh" if share >= 0.75 else ("en" if share <= 0.25 else "mixed")
