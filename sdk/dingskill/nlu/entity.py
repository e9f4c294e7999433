"""``Entity``: one thing found in the text the user typed.

Every component that finds entities (trigger-word and lookup rules, the system entities that
need no training, the trained extractor) returns these, and the dialogue consumes them: it
never re-parses text. Offsets are character offsets into the text as typed (after the
runtime's preprocessing, which never rewrites words: it only removes @mentions and control
characters and folds full-width forms), ``end`` exclusive; the schema is that of the
span-annotated JSONL files (SNIPS, CAIS): ``{start, end, entity, value, confidence, source}``.

Canonical values of the system entities (JSON-able, so they survive the context store):

| entity | value | example |
| --- | --- | --- |
| ``date`` | ISO date ``"YYYY-MM-DD"`` | 下周一, 12月21日, "next Monday" |
| ``time`` | ``"HH:MM"`` (24 h) | 下午三点 -> ``"15:00"``, "3pm", "noon" -> ``"12:00"`` |
| ``part_of_day`` | ``"morning" | "noon" | "afternoon" | "evening" | "night"`` | 下午, 傍晚 |
| ``datetime`` | ``"YYYY-MM-DDTHH:MM"`` | 周五下午三点 |
| ``date_range`` | ``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}`` (both inclusive) | 下周一到周三 |
| ``duration`` | ``{"amount": float, "unit": "minute|hour|day|week|month|year"}`` | 三天, 一天半 |
| ``number`` | int or float | 五, 12 |
| ``amount`` | ``{"amount": float, "currency": "CNY|USD|..."}`` | 200元, "$35.5" |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["Entity", "EntitySource", "SYSTEM_TYPES", "resolve_overlaps"]

SYSTEM_TYPES = (
    "date",
    "time",
    "part_of_day",
    "datetime",
    "date_range",
    "duration",
    "number",
    "amount",
)


class EntitySource(str, Enum):
    """The component that found an entity."""

    RULE = "rule"  # a skill's word list / lookup table / pattern
    SYSTEM = "system"  # dates, times, durations, numbers, money: no training
    MODEL = "model"  # the trained extractor


@dataclass(frozen=True)
class Entity:
    """A typed span of the user's text with its canonical value."""

    start: int
    end: int
    entity: str
    value: Any
    confidence: float = 1.0
    source: EntitySource = EntitySource.MODEL

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise ValueError(f"entity span [{self.start}, {self.end}) is empty or negative")
        object.__setattr__(self, "source", EntitySource(self.source))

    def text_in(self, text: str) -> str:
        """The characters of ``text`` this entity covers."""
        return text[self.start : self.end]

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict:
        """The JSONL schema: ``{start, end, entity, value, confidence, source}``."""
        d = asdict(self)
        d["source"] = self.source.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Entity:
        return cls(
            int(d["start"]),
            int(d["end"]),
            str(d["entity"]),
            d.get("value"),
            float(d.get("confidence", 1.0)),
            EntitySource(d.get("source", "model")),
        )


def resolve_overlaps(entities: list[Entity]) -> list[Entity]:
    """Keep a non-overlapping subset: longer spans first, then higher confidence, then the
    earlier start; the result is ordered by position."""
    kept: list[Entity] = []
    for e in sorted(entities, key=lambda e: (-(e.end - e.start), -e.confidence, e.start)):
        if not any(e.overlaps(k) for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: (e.start, e.end))
