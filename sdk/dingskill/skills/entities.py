"""The entities of a message for one skill: its word-list and pattern slots as lookup (rule)
entities, the system entities (dates, times, durations, numbers, money) and its trained
extractor's predictions, merged into one non-overlapping list. The dialogue fills slots
from these; it never re-parses the text."""

from __future__ import annotations

import datetime as dt

from ..nlu.entity import SYSTEM_TYPES, Entity, EntitySource, resolve_overlaps
from ..nlu.safe_regex import compile_safe
from .slots import slot_entity, slot_type, word_spans

__all__ = ["find_entities", "rule_entities", "system_entities"]


def rule_entities(slots: dict[str, dict], text: str) -> list[Entity]:
    """Lookup entities of the declared word lists (synonyms -> canonical value) and patterns,
    typed by the slot's entity (its own name unless ``type: entity`` names another)."""
    out: list[Entity] = []
    for name, spec in slots.items():
        kind = slot_type(spec)
        entity = slot_entity(name, spec)
        if spec.get("words") and kind in ("words", "entity"):
            out += [
                Entity(s, e, entity, canon, 1.0, EntitySource.RULE)
                for s, e, canon in word_spans(spec["words"], text)
            ]
        elif kind == "regex":
            m = compile_safe(spec["pattern"]).search(text)
            if m:
                g = 1 if m.groups() else 0
                if m.end(g) > m.start(g):
                    out.append(
                        Entity(m.start(g), m.end(g), entity, m.group(g), 1.0, EntitySource.RULE)
                    )
    return out


def system_entities(text: str, today: dt.date, now: dt.datetime | None = None) -> list[Entity]:
    """Dates, times, ranges, durations, numbers and money in ``text`` (no training)."""
    from ..nlu.system_entities import find_system_entities

    return find_system_entities(text, today=today, now=now)


def find_entities(skill, text: str, today: dt.date, now: dt.datetime | None = None) -> list[Entity]:
    """Rule + system + model entities of ``text`` for ``skill``, overlaps resolved (longer
    spans first, then the more confident)."""
    found = rule_entities(skill.manifest.slots, text)
    found += system_entities(text, today, now)
    finder = getattr(skill, "find_entities", None)  # the trained extractor, when there is one
    if finder is not None:
        # dates, times and durations come from the system parser, with canonical values;
        # the extractor's spans of those types carry only the words
        found += [e for e in finder(text) if e.entity not in SYSTEM_TYPES]
    return resolve_overlaps(found)
