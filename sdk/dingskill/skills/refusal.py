"""Messages the pipeline refuses before understanding them (nothing to read once cleaned, or
over the size limit): a polite reply in the conversation's language that leaves the
conversation as it was. A pending form stays pending and its question is asked again, so
the reply's ``state`` shows the form the next answer goes to."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import TYPE_CHECKING

from .clarify import _SEP, QUESTION
from .conversation import Message, Reply
from .dialogue import Awaiting, FlowState, flow_expired, flow_spec
from .flow import OFFER, RESUME, SUGGEST, _ask, _show

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

__all__ = ["Refusal", "EMPTY", "TOO_LONG", "refusal_reply"]


class Refusal(str, Enum):
    EMPTY = "empty"  # nothing left once cleaned (empty, blanks, control characters)
    TOO_LONG = "too_long"  # over the runtime's ``max_text_chars``


EMPTY = {
    "zh": "您好像没有输入内容，请问需要什么帮助？",
    "en": "It looks like your message was empty. How can I help?",
}
TOO_LONG = {
    "zh": "消息太长了，请精简到 {limit} 字以内再发。",
    "en": "That message is too long; please keep it under {limit} characters.",
}
# within a form: said before its question again
EMPTY_IN_FLOW = {"zh": "您好像没有输入内容。", "en": "It looks like your message was empty."}
ERRORS = {Refusal.EMPTY: "empty text", Refusal.TOO_LONG: "text too long"}
SAMPLE = 200  # the language of an over-long message is read from its start


def _pending(engine: Engine, context: dict):
    """(skill, flow spec, FlowState) of the conversation's form while it is still current
    (its skill loaded, not timed out), else None. Nothing is changed: the next message
    that says something ends an expired form with its note, as usual."""
    flow = context.get("flow")
    if not flow:
        return None
    skill, spec = flow_spec(engine._by_id, flow)
    if spec is None or flow_expired(flow, spec, engine._now_ms()):
        return None
    return skill, spec, FlowState.from_dict(flow)


async def refusal_reply(
    engine: Engine, message: Message, context: dict, reason: Refusal, limit: int = 0
) -> Reply:
    """The reply to a refused ``message``; ``context`` is read, never changed."""
    sample = message.text[:SAMPLE]
    pending = _pending(engine, context)
    if pending is not None and reason is Refusal.EMPTY:
        lang = pending[2].lang or engine._lang_of(sample, context)
    else:  # an over-long text has words of its own; else the conversation's language
        lang = engine._lang_of(sample, context)
    said = (
        TOO_LONG[lang].format(limit=limit)
        if reason is Refusal.TOO_LONG
        else (EMPTY_IN_FLOW if pending is not None else EMPTY)[lang]
    )
    reply = Reply(text=said, source="fallback", error=ERRORS[reason])
    asked = (context.get("clarify") or {}).get("options") if pending is None else None
    if asked:  # a clarifying question still waits: asked again, its pick still works
        said = (EMPTY_IN_FLOW[lang] if reason is Refusal.EMPTY else said) + "\n"
        names = _SEP[lang].join(str(o.get("label", "")) for o in asked)
        reply.text = said + QUESTION[lang].format(options=names)
    if pending is not None:
        skill, spec, state = pending
        state.lang = lang  # the question in the reply's language (not saved)
        try:
            ask = await _question(engine, skill, spec, state, message, context)
        except Exception:  # noqa: BLE001 - the polite sentence alone, never an error
            ask = ""
        reply.text = f"{said}\n{RESUME[lang].format(ask=ask)}" if ask else said
        reply.slots = dict(state.slots)
    reply.state = dict(context.get("flow") or {})
    return reply


async def _question(engine: Engine, skill, spec, state: FlowState, message, context) -> str:
    """The question the form waits on, as it was asked: the pending slot's, the summary to
    confirm, "did you mean ...?" or "leave it for the new request?"."""
    lang = state.lang or "zh"
    if state.awaiting == Awaiting.SUGGESTION.value and state.suggestion:
        return SUGGEST[lang].format(value=_show(state.suggestion.get("value"), lang))
    if state.awaiting == Awaiting.OFFER.value:
        before = Awaiting.SLOT.value if state.pending else Awaiting.CONFIRM.value
        asked = dataclasses.replace(state, awaiting=before)
        return OFFER[lang].format(ask=await _ask(engine, skill, spec, asked, message, context))
    if state.awaiting != Awaiting.CONFIRM.value and not state.pending:
        state = dataclasses.replace(state, awaiting=Awaiting.CONFIRM.value)
    return await _ask(engine, skill, spec, state, message, context)
