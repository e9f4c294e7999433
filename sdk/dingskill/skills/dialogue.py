"""Multi-turn flows: ask for missing slots, wait for the answer, time out, let the user out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

__all__ = [
    "Awaiting",
    "CANCEL_WORDS",
    "FlowEnd",
    "FlowState",
    "end_flow",
    "flow_expired",
    "flow_spec",
    "is_cancel",
    "missing_slots",
    "new_flow",
]


class FlowEnd(str, Enum):
    """Why a multi-turn flow ended (``context["last_flow"]["ended"]``)."""

    COMPLETED = "completed"  # every slot filled, the response ran
    CANCELLED = "cancelled"  # the user said 取消 / cancel
    TIMEOUT = "timeout"  # no answer within the flow's timeout_s
    SWITCHED = "switched"  # the user chose to leave it for another request
    GAVE_UP = "gave_up"  # three answers in a row did not fill the slot
    SKILL_GONE = "skill_gone"  # the skill or intent is no longer installed


class Awaiting(str, Enum):
    """What the flow waits for (``context["flow"]["awaiting"]``)."""

    SLOT = "slot"  # the answer to the question about ``pending``
    CONFIRM = "confirm"  # 是 / 否 to the summary (the flow's ``confirm:`` step)
    SUGGESTION = "suggestion"  # 是 / 否 to "did you mean 年假?" (a value with a typo)
    OFFER = "offer"  # 是 / 否 to leaving this form for another request


@dataclass
class FlowState:
    """A pending multi-turn flow, stored as ``context["flow"]`` (JSON)."""

    skill: str
    intent: str
    slots: dict
    pending: str  # the slot being asked for ("" while confirming)
    started_ms: int
    asks: int = 1  # how often in a row the question got no usable answer, plus one
    offer: dict | None = None  # {"skill", "intent", "text"}: leave the form for this?
    digressions: int = 0  # other requests answered while the flow waited
    awaiting: str = Awaiting.SLOT.value
    suggestion: dict | None = None  # {"slot", "value"}: the value a typo probably meant
    entities: dict = field(default_factory=dict)  # slot -> the entity its value came from
    lang: str = ""  # the conversation's language when the flow started (zh / en)

    @classmethod
    def from_dict(cls, d: dict) -> FlowState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class FlowRecord:
    """How the last flow of a conversation ended (``context["last_flow"]``)."""

    skill: str
    intent: str
    ended: FlowEnd
    slots: dict = field(default_factory=dict)
    ended_ms: int = 0


def end_flow(context: dict, reason: FlowEnd, now_ms: int = 0) -> dict | None:
    """Remove the pending flow and record why it ended; returns the flow that ended."""
    flow = context.pop("flow", None)
    if flow:
        rec = FlowRecord(flow["skill"], flow["intent"], reason, dict(flow["slots"]), now_ms)
        context["last_flow"] = {**asdict(rec), "ended": reason.value}
    return flow


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


def flow_spec(skills_by_id: dict, flow: dict) -> tuple[object, dict | None]:
    """(skill, flow spec) of a saved flow (``context["flow"]`` or ``["last_flow"]``); the
    spec is None when its skill is no longer loaded or its intent has no flow any more."""
    skill = skills_by_id.get(flow.get("skill"))
    spec = skill.manifest.intents.get(flow.get("intent"), {}).get("flow") if skill else None
    return skill, spec


def flow_expired(flow: dict, spec: dict, now_ms: int) -> bool:
    """Whether the saved ``flow`` has run past its spec's ``timeout_s``."""
    return now_ms - flow["started_ms"] > spec.get("timeout_s", DEFAULT_TIMEOUT_S) * 1000


def is_cancel(text: str, extra: list[str] | None = None) -> bool:
    t = text.strip().lower().rstrip("。.!！")
    words = [*CANCEL_WORDS, *(extra or [])]
    return any(t == w or (len(t) <= 12 and w in t) for w in words)


def missing_slots(flow_spec: dict, slots: dict) -> list[dict]:
    return [s for s in flow_spec["slots"] if slots.get(s["name"]) in (None, "")]


def new_flow(
    skill_id: str,
    intent: str,
    slots: dict,
    pending: str,
    now_ms: int,
    entities: dict | None = None,
    lang: str = "",
) -> dict:
    state = FlowState(skill_id, intent, dict(slots), pending, now_ms)
    state.entities = dict(entities or {})
    state.lang = lang
    return state.to_dict()
