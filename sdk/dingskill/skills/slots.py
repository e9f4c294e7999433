"""Slot extraction from Chinese and English text: dates, amounts, numbers, durations, word
lists and regular expressions. Dates are resolved against a given ``today``."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import lru_cache

from ..nlu.entity import SYSTEM_TYPES
from ..nlu.safe_regex import compile_safe
from ..nlu.system_entities import find_system_entities, parse_number

__all__ = [
    "extract_slot",
    "parse_cn_number",
    "extract_date",
    "extract_amount",
    "extract_duration",
    "extract_number",
]


def parse_cn_number(text: str) -> float | None:
    """ "三" -> 3, "十五" -> 15, "两百" -> 200, "1.5" -> 1.5, "three" -> 3 (the system
    entities' number reader)."""
    return parse_number(text)


def _system_slot(kind: str, text: str, today: dt.date | None):
    """The first value of a ``kind`` slot among ``text``'s system entities, or None: the
    same reading and conversion the dialogue uses (:func:`slot_value`)."""
    for e in find_system_entities(text, today=today or dt.date.today()):
        value = slot_value(kind, {"type": kind}, e.entity, e.value)
        if value is not None:
            return value
    return None


def extract_date(text: str, today: dt.date | None = None) -> str | None:
    """An ISO date from 今天/明天/后天, 下周一/周三, 3月5日, 2026年12月1日, 2026-12-01,
    tomorrow, (next) Monday..."""
    return _system_slot("date", text, today)


def extract_amount(text: str) -> float | None:
    """¥200, 200元, 两百块, $35.5, 35.5 dollars, RMB 80."""
    return _system_slot("amount", text, None)


def extract_duration(text: str) -> float | None:
    """Days: 3天, 半天, 一天半, 两个工作日, half a day, 2 days, 1.5 days."""
    return _system_slot("duration", text, None)


def extract_number(text: str) -> float | None:
    return _system_slot("number", text, None)


def _words(spec: dict[str, list[str]]) -> Callable[[str], str | None]:
    pairs = sorted(
        ((syn.lower(), canon) for canon, syns in spec.items() for syn in [canon, *syns]),
        key=lambda p: -len(p[0]),
    )

    def find(text: str) -> str | None:
        t = text.lower()
        for syn, canon in pairs:
            if syn and syn in t:
                return canon
        return None

    return find


def extract_slot(spec: dict, text: str, today: dt.date | None = None, whole_answer: bool = False):
    """Value of one slot declared as ``{"type": ..., "words": ..., "pattern": ...}`` or None.

    ``whole_answer``: the text answers a question about this slot (a ``text`` slot takes it)."""
    kind = spec.get(
        "type", "words" if "words" in spec else "regex" if "pattern" in spec else "text"
    )
    if kind == "date":
        return extract_date(text, today)
    if kind == "amount":
        return extract_amount(text)
    if kind == "duration":
        return extract_duration(text)
    if kind == "number":
        return extract_number(text)
    if kind == "words":
        return _words(spec.get("words", {}))(text)
    if kind == "regex":
        m = compile_safe(spec["pattern"]).search(text)
        if not m:
            return None
        return m.group(1) if m.groups() else m.group(0)
    return text.strip() if whole_answer and text.strip() else None


# -- slots from entities -------------------------------------------------------------------------
# the system entity types a slot may be declared as (``type: date`` ...) and, per slot type,
# the entity types that can fill it (converted by :func:`slot_value`)
SYSTEM_SLOT_TYPES = SYSTEM_TYPES
ACCEPTS = {
    "date": ("date", "datetime", "date_range"),
    "time": ("time", "datetime", "part_of_day"),
    "part_of_day": ("part_of_day",),
    "datetime": ("datetime", "date"),
    "date_range": ("date_range", "date"),
    "duration": ("duration",),
    "number": ("number",),
    "amount": ("amount",),
}
# days per unit, for a duration slot (``unit: day``, the default)
_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0, "year": 365.0}
_UNITS = ("minute", "hour", "day", "week", "month", "year")


def slot_type(spec: dict) -> str:
    """The declared type of a slot (``words`` / ``regex`` / ``text`` when left out)."""
    return spec.get(
        "type", "words" if "words" in spec else "regex" if "pattern" in spec else "text"
    )


def slot_entity(name: str, spec: dict) -> str:
    """The entity type a slot is filled from: ``entity:`` for ``type: entity``, the slot's own
    name for word lists and patterns (their lookup entities carry it), else the system type."""
    kind = slot_type(spec)
    if kind == "entity":
        return spec["entity"]
    if kind in ("words", "regex", "text"):
        return name
    return kind


def _clean_number(x):
    return int(x) if isinstance(x, float) and x.is_integer() else x


def slot_value(name: str, spec: dict, entity: str, value):
    """The value of slot ``name`` (declared as ``spec``) from an entity of type ``entity`` with
    canonical ``value``, or None when that entity cannot fill the slot: a ``date`` slot takes a
    date, a datetime's date or a date range's start; a ``time`` slot a time, a datetime's time
    or a part of the day; a ``duration`` slot a duration in its ``unit`` (default ``day``)..."""
    kind = slot_type(spec)
    if kind in ("words", "regex", "text", "entity"):
        if entity != slot_entity(name, spec):
            return None
        if kind in ("entity", "words") and spec.get("words") and isinstance(value, str):
            return _words(spec["words"])(value) or value
        return value
    if entity not in ACCEPTS.get(kind, ()):
        return None
    try:
        if kind == "date":
            if entity == "datetime":
                return str(value)[:10]
            if entity == "date_range":
                return value["start"]
            return value
        if kind == "time":
            return str(value)[11:16] if entity == "datetime" else value
        if kind == "datetime":
            return value if entity == "datetime" else f"{value}T00:00"
        if kind == "date_range":
            return value if entity == "date_range" else {"start": value, "end": value}
        if kind == "duration":
            unit = spec.get("unit", "day")
            if value["unit"] == unit:
                return _clean_number(float(value["amount"]))
            if unit == "day" and value["unit"] in _UNIT_DAYS:
                return _clean_number(float(value["amount"]) * _UNIT_DAYS[value["unit"]])
            return None
        if kind in ("number", "amount"):
            amount = value["amount"] if isinstance(value, dict) else value
            return _clean_number(float(amount))
    except (KeyError, TypeError, ValueError):
        return None
    return value


def word_spans(spec: dict[str, list[str]], text: str) -> list[tuple[int, int, str]]:
    """Every non-overlapping occurrence of a listed word or synonym: ``(start, end,
    canonical)``, longest forms first, case-insensitive."""
    low = text.lower()
    rows, anywhere = _word_table(spec)
    if anywhere is None or anywhere.search(low) is None:
        return []  # one scan for all forms: most texts name none
    taken: list[tuple[int, int, str]] = []
    for syn, canon, ascii_word in rows:
        start = low.find(syn)
        while start >= 0:
            end = start + len(syn)
            bounded = not ascii_word or (
                (start == 0 or not low[start - 1].isalnum())
                and (end == len(low) or not low[end].isalnum())
            )
            if bounded and not any(s < end and start < e for s, e, _ in taken):
                taken.append((start, end, canon))
            start = low.find(syn, start + 1)
    return sorted(taken)


_WordTable = tuple[tuple[tuple[str, str, bool], ...], "re.Pattern | None"]


def _word_table(spec: dict[str, list[str]]) -> _WordTable:
    """``(form, canonical, whole ASCII word)`` of each listed word and synonym, lower case,
    longest first, and one pattern matching any form (None: no forms): made once per word
    list (keyed by its contents, so an edited list gets a new table)."""
    key = tuple((canon, tuple(syns)) for canon, syns in spec.items())
    try:
        return _word_table_of(key)
    except TypeError:  # something unhashable in the list: no cache
        return _word_table_of.__wrapped__(key)


@lru_cache(maxsize=1024)
def _word_table_of(items: tuple) -> _WordTable:
    pairs = sorted(
        {(syn.lower(), canon) for canon, syns in items for syn in [canon, *syns] if syn},
        key=lambda p: (-len(p[0]), p[0]),
    )
    rows = tuple((syn, canon, syn.isascii() and syn[:1].isalnum()) for syn, canon in pairs)
    anywhere = re.compile("|".join(re.escape(syn) for syn, _ in pairs)) if pairs else None
    return rows, anywhere


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute: 1 each)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def closest_word(spec: dict[str, list[str]], answer: str) -> tuple[str, float] | None:
    """The listed value whose word or synonym is most like ``answer`` (a short reply with a
    typo: 年价 -> 年假, "anual leave" -> 年假): ``(canonical, similarity)`` with similarity
    1 - edit distance / length, or None when nothing is at least half alike or two values
    tie. Character-level, so it serves Chinese without a segmenter or pinyin."""
    t = re.sub(r"[\s\W_]+", " ", answer.lower()).strip()
    if not t or len(t) > 24:
        return None
    best: dict[str, float] = {}
    for canon, syns in spec.items():
        for syn in [canon, *syns]:
            s = syn.lower()
            if len(s) < 2:
                continue
            longest = max(len(t), len(s))
            # the distance is at least the difference in length: a word that cannot be
            # half alike changes neither the best value nor a tie for it (the answer of
            # most messages in a pending form, which are not a typo of any value)
            if 2 * abs(len(t) - len(s)) > longest:
                continue
            sim = 1 - _distance(t, s) / longest
            best[canon] = max(best.get(canon, 0.0), sim)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] < 0.5:
        return None
    if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return ranked[0]
