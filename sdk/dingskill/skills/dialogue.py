"""Multi-turn flows: ask for missing slots, wait for the answer, time out, let the user out."""

from __future__ import annotations

import datetime as dt

from .slots import extract_slot

__all__ = ["CANCEL_WORDS", "is_cancel", "missing_slots", "fill_slots", "new_flow"]

CANCEL_WORDS = (
    "算了",
    "取消",
    "不用了",
    "不要了",
    "不办了",
    "退出",
    "cancel",
    "never mind",
    "nevermind",
    "forget it",
    "stop",
    "quit",
)
DEFAULT_TIMEOUT_S = 300.0


def is_cancel(text: str, extra: list[str] | None = None) -> bool:
    t = text.strip().lower().rstrip("。.!！")
    words = [*CANCEL_WORDS, *(extra or [])]
    return any(t == w or (len(t) <= 12 and w in t) for w in words)


def missing_slots(flow_spec: dict, slots: dict) -> list[dict]:
    return [s for s in flow_spec["slots"] if slots.get(s["name"]) in (None, "")]


def fill_slots(
    declared: dict,
    wanted: list[str],
    text: str,
    slots: dict,
    today: dt.date | None = None,
    answer_for: str | None = None,
) -> dict:
    """Fill the ``wanted`` slots found in ``text`` (the slot being asked for takes a whole
    free-text answer). Returns the newly filled slots."""
    new = {}
    for name in wanted:
        if slots.get(name) not in (None, ""):
            continue
        value = extract_slot(declared.get(name, {}), text, today, whole_answer=name == answer_for)
        if value is not None:
            new[name] = value
    slots.update(new)
    return new


def new_flow(skill_id: str, intent: str, slots: dict, pending: str, now_ms: int) -> dict:
    return {
        "skill": skill_id,
        "intent": intent,
        "slots": dict(slots),
        "pending": pending,
        "started_ms": now_ms,
        "asks": 1,
    }
