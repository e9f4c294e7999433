"""The entities of a message for one skill: its word-list and pattern slots as lookup (rule)
entities, the system entities (dates, times, durations, numbers, money) and its trained
extractor's predictions, merged into one non-overlapping list. The dialogue fills slots
from these; it never re-parses the text."""

from __future__ import annotations

import datetime as dt
import threading

from ..nlu.entity import SYSTEM_TYPES, Entity, EntitySource, resolve_overlaps
from ..nlu.safe_regex import compile_safe
from .slots import slot_entity, slot_type, word_spans

__all__ = ["EntityCache", "find_entities", "rule_entities", "system_entities"]


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


def find_entities(
    skill,
    text: str,
    today: dt.date,
    now: dt.datetime | None = None,
    system: list[Entity] | None = None,
) -> list[Entity]:
    """Rule + system + model entities of ``text`` for ``skill``, overlaps resolved (longer
    spans first, then the more confident). ``system``: the system entities of ``text``
    already found for ``today`` / ``now`` (they do not depend on the skill)."""
    found = rule_entities(skill.manifest.slots, text)
    found += system if system is not None else system_entities(text, today, now)
    finder = getattr(skill, "find_entities", None)  # the trained extractor, when there is one
    if finder is not None:
        # dates, times and durations come from the system parser, with canonical values;
        # the extractor's spans of those types carry only the words
        found += [e for e in finder(text) if e.entity not in SYSTEM_TYPES]
    return resolve_overlaps(found)


_CLOCK = object()  # EntityCache's mark of a text whose entities read the clock
_READS_CLOCK: list = []  # nlu.system_entities.reads_clock, imported on first use


def _reads_clock():
    if not _READS_CLOCK:
        from ..nlu.system_entities import reads_clock

        _READS_CLOCK.append(reads_clock)
    return _READS_CLOCK[0]


class EntityCache:
    """The entities of (skill, text) computed ahead of the engine (in the runtime's
    classification threads), for one date: :meth:`get` gives exactly what
    :func:`find_entities` would give now, or None. Only texts whose entities cannot depend
    on the clock time (no from-now phrase, see ``reads_clock``) are kept, so the date is
    the whole key besides the skill and the text. Bounded (oldest first out); thread-safe.
    Nothing fills it by itself: the engine only reads it (the notebook, which retrains
    skills in place, never fills it)."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"EntityCache: size must be >= 1, got {size}")
        self.size = int(size)
        self._items: dict[tuple, tuple[object, tuple[Entity, ...]]] = {}
        # per (text, date): the routed winner whose entities were filled (None: no skill
        # won), or _CLOCK for a text never kept
        self._marks: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, skill, text: str, today: dt.date) -> list[Entity] | None:
        """The cached entities of ``text`` for ``skill`` on ``today`` (a new list), or None."""
        hit = self._items.get((id(skill), text, today))
        if hit is None or hit[0] is not skill:  # an id reused by another skill object
            return None
        return list(hit[1])

    def has(self, skill, text: str, today: dt.date) -> bool:
        hit = self._items.get((id(skill), text, today))
        return hit is not None and hit[0] is skill

    def ready(self, skills, text: str, today: dt.date, winner: bool) -> bool:
        """Whether :meth:`fill` has nothing to add for ``skills`` (and, with ``winner``, the
        routed winner's skill of an earlier fill): all kept, or the text reads the clock."""
        mark = self._marks.get((text, today), self)
        if mark is _CLOCK:
            return True
        need = list(skills)
        if winner:
            if mark is self:  # never routed ahead
                return False
            if mark is not None:
                need.append(mark)
        return all(self.has(s, text, today) for s in need)

    def fill(self, skills, text: str, today: dt.date, now: dt.datetime, winner=_CLOCK) -> None:
        """Find and keep the entities of ``text`` for each of ``skills`` and for ``winner``
        (the routed winner's skill, or None: no skill won), the system entities once for
        all; a text whose entities read the clock is only marked."""
        if not text.strip():
            return
        if _reads_clock()(text):
            with self._lock:
                self._marks[(text, today)] = _CLOCK
                self._trim(self._marks)
            return
        wanted = [*skills, *([winner] if winner is not _CLOCK and winner is not None else [])]
        todo = [s for s in dict.fromkeys(wanted) if not self.has(s, text, today)]
        found = []
        if todo:
            system = system_entities(text, today, now)
            found = [(s, tuple(find_entities(s, text, today, now, system=system))) for s in todo]
        with self._lock:
            for s, ents in found:
                self._items[(id(s), text, today)] = (s, ents)
            if winner is not _CLOCK:
                self._marks[(text, today)] = winner
            self._trim(self._items)
            self._trim(self._marks)

    def _trim(self, items: dict) -> None:
        while len(items) > self.size:
            del items[next(iter(items))]
