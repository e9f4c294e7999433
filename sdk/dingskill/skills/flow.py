"""The flow engine: executes the commands of a message (:mod:`dingskill.skills.commands`)
against the typed flow state (:class:`~dingskill.skills.dialogue.FlowState`, stored as JSON
in ``context["flow"]``) and words the reply: the next question, the summary to confirm, the
acknowledgement of a correction, "did you mean ...?", a digression's answer followed by the
pending question, cancelled / gave up. It never looks at the message text; the engine's
services (routing, starting another intent, running the response) are passed in."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from ..text import detect_language
from .commands import (
    _CORRECTION,
    Act,
    Command,
    Digression,
    _leftover,
    _pick,
    _values,
    is_no,
    is_yes,
    slot_label,
    understand,
)
from .conversation import Message, Reply
from .dialogue import Awaiting, FlowEnd, FlowState, end_flow, flow_spec, missing_slots
from .smalltalk import match_small_talk
from .templates import arender, choose_variant

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

__all__ = ["continue_flow", "localized", "first_values", "CANCELLED", "GAVE_UP"]

CANCELLED = {"zh": "好的，已取消。", "en": "OK, cancelled."}
GAVE_UP = {
    "zh": "抱歉，我几次都没能理解您的回答，这次「{what}」先不办了（没有提交任何内容）。"
    "需要时请重新告诉我，例如「{example}」。",
    "en": "Sorry, I could not make sense of the last answers, so I have stopped this "
    'request ({what}); nothing was submitted. Start again any time, e.g. "{example}".',
}
RESUME = {"zh": "（回到刚才的事项：{ask}）", "en": "(Back to your request: {ask})"}
OFFER = {
    "zh": "您还有一件事没办完（{ask}）。要先放下它，改办新的请求吗？请回复「是」或「否」。",
    "en": "You have a request in progress ({ask}). Leave it for the new one? Reply yes or no.",
}
CORRECTED = {"zh": "好的，{label}改为「{value}」。", "en": "OK, {label} changed to {value}."}
SUGGEST = {
    "zh": "您是说「{value}」吗？请回复「是」或「否」。",
    "en": 'Did you mean "{value}"? Reply yes or no.',
}
NOT_UNDERSTOOD = {"zh": "抱歉，没听明白。", "en": "Sorry, I didn't catch that. "}
WHAT_TO_CHANGE = {
    "zh": "好的，请告诉我要改哪一项，例如「把{label}改成……」；或回复「取消」。",
    "en": 'OK, tell me what to change, e.g. "change the {label} to ...", or say cancel.',
}
SUMMARY = {
    "zh": ("请确认：", "以上信息对吗？请回复「是」或「否」，也可以直接说要改的内容。"),
    "en": ("Please confirm:", "Is this right? Reply yes or no, or tell me what to change."),
}


def localized(value, lang: str):
    """A text given per language (``{zh: ..., en: ...}``) in ``lang``, else as it is."""
    if isinstance(value, dict):
        return value.get(lang) or value.get("zh") or next(iter(value.values()), "")
    return value


_PARTS_OF_DAY_ZH = {
    "morning": "上午",
    "noon": "中午",
    "afternoon": "下午",
    "evening": "傍晚",
    "night": "晚上",
}


def _show(value, lang: str = "en") -> str:
    if lang == "zh" and isinstance(value, str) and value in _PARTS_OF_DAY_ZH:
        return _PARTS_OF_DAY_ZH[value]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dict) and "start" in value:
        return f"{value['start']} ~ {value.get('end', '')}"
    return str(value)


def _shown(state: FlowState, name: str, lang: str) -> str:
    """A slot's value as a summary shows it: in English, a Chinese canonical value (西湖厅,
    年假) as the user's own words for it (West Lake), when an entity of theirs gave it."""
    shown = _show(state.slots[name], lang)
    said = (state.entities.get(name) or {}).get("text")
    if lang == "en" and not shown.isascii() and said and said.isascii():
        return said
    return shown


def first_values(text: str, entities, declared: dict, wanted: list[str]) -> tuple[dict, dict]:
    """``(slots, entities)`` a first message gives: every slot an entity fits."""
    state = FlowState("", "", {}, "", 0)
    found = _pick(_values(text, entities, wanted, declared, state, []))
    slots = {name: f.value for name, f in found.items()}
    ents = {
        name: {**f.entity.to_dict(), "text": f.entity.text_in(text)} for name, f in found.items()
    }
    return slots, ents


def _intent_name(skill, intent: str, lang: str) -> str:
    """How replies name an intent: its ``label`` in ``lang``, else its example words."""
    from .fallback import example

    label = (skill.manifest.intents.get(intent) or {}).get("label")
    return str(localized(label, lang) or localized(example(skill, intent), lang))


def _wanted(spec: dict) -> list[str]:
    return [s["name"] for s in spec["slots"]]


async def _ask(
    engine: Engine, skill, spec, state: FlowState, message, context, seed: object = None
) -> str:
    """The question for the pending slot (or the summary while confirming)."""
    if state.awaiting == Awaiting.CONFIRM.value:
        return await _summary(engine, skill, spec, state, message, context)
    ask_spec = next(s for s in spec["slots"] if s["name"] == state.pending)
    variables = engine._flow_variables(skill, state, message, context)
    lang = state.lang or "zh"
    return await arender(
        choose_variant(
            localized(ask_spec["ask"], lang),
            engine._seed(message, context, state.asks if seed is None else seed),
        ),
        variables,
    )


async def _summary(engine: Engine, skill, spec, state: FlowState, message, context) -> str:
    lang = state.lang or "zh"
    confirm = spec.get("confirm")
    if isinstance(confirm, dict) and "ask" in confirm:
        variables = engine._flow_variables(skill, state, message, context)
        return await arender(
            choose_variant(localized(confirm["ask"], lang), engine._seed(message, context)),
            variables,
        )
    head, tail = SUMMARY[lang]
    declared = skill.manifest.slots
    sep = "：" if lang == "zh" else ": "
    lines = [
        f"- {slot_label(n, declared.get(n, {}), lang)}{sep}{_shown(state, n, lang)}"
        for n in _wanted(spec) + list(spec.get("optional", []))
        if state.slots.get(n) not in (None, "")
    ]
    return "\n".join([head, *lines, tail])


def _reply(skill, state: FlowState, text: str, **kw) -> Reply:
    return Reply(
        text=text,
        skill_id=skill.manifest.id,
        intent=state.intent,
        confidence=kw.pop("confidence", 1.0),
        source=kw.pop("source", "dialogue"),
        slots=dict(state.slots),
        **kw,
    )


def _save(context: dict, state: FlowState) -> None:
    context["flow"] = state.to_dict()


async def _resume(engine: Engine, reply: Reply, skill, spec, state, message, context) -> Reply:
    """Append "back to the form" and the pending question to a digression's answer."""
    lang = state.lang or "zh"
    back = RESUME[lang].format(ask=await _ask(engine, skill, spec, state, message, context))
    reply.text = f"{reply.text}\n{back}" if reply.text else back
    if isinstance(reply.card, dict) and reply.card.get("text"):
        reply.card = {**reply.card, "text": f"{reply.card['text']}\n{back}"}
    return reply


async def _digression(engine: Engine, cmd: Command, skill, spec, state, message, context):
    text = message.text
    kind = cmd.digression
    other, d = cmd.skill, cmd.decision
    if kind is Digression.COMMAND:
        other, d = engine.route(text)
        if other is None:
            small = match_small_talk(text)
            if small is not None:
                kind = Digression.SMALL_TALK
            else:
                kind = Digression.OUT_OF_SCOPE
        else:
            kind = Digression.INTENT
    if kind is Digression.SMALL_TALK:
        _save(context, state)
        reply = await engine._small_talk(match_small_talk(text), message, context)
    elif kind is Digression.INTENT:
        resp = other.manifest.intents.get(d.intent) or {}
        if resp.get("flow") and missing_slots(resp["flow"], {}):
            state.offer = {"skill": other.manifest.id, "intent": d.intent, "text": text}
            state.awaiting = Awaiting.OFFER.value
            lang = state.lang or "zh"
            # the question as it stood before the offer
            asked = dataclasses.replace(state, awaiting=Awaiting.SLOT.value)
            if not state.pending:
                asked.awaiting = Awaiting.CONFIRM.value
            ask = await _ask(engine, skill, spec, asked, message, context)
            _save(context, state)
            return _reply(
                skill,
                state,
                OFFER[lang].format(ask=ask),
                confidence=d.confidence,
                alternatives=d.alternatives,
            )
        context.pop("flow", None)  # the other response runs outside the form
        reply = await engine._start(other, d, message, context)
    else:
        reply = engine._fallback_reply(text, d, context)
        reply.slots = dict(state.slots)
    state.digressions += 1
    _save(context, state)
    return await _resume(engine, reply, skill, spec, state, message, context)


async def continue_flow(engine: Engine, skill, spec: dict, message: Message, context: dict):
    """Answer ``message`` within the pending flow; None when the flow ended without an
    answer of its own (the message is then routed as usual)."""
    state = FlowState.from_dict(context["flow"])
    text = message.text
    said = detect_language(text)
    if said == "zh" or (said == "en" and re.search(r"[A-Za-z]", text)):
        state.lang = said  # replies follow the language the user now speaks
    elif not state.lang:
        state.lang = engine._lang_of(text, context)
    entities = engine.entities(skill, text)
    routed: list = []

    def route():
        if not routed:
            routed.append(engine.route(text))
        return routed[0]

    cmds = understand(
        text,
        state,
        spec,
        skill.manifest.slots,
        entities,
        route,
        match_small_talk(text),
        long_answer=engine._long_answer,
    )
    reply = await _execute(engine, cmds, skill, spec, state, message, context)
    if reply is not None:
        reply.commands = [c.to_dict() for c in cmds]
        reply.entities = [{**e.to_dict(), "text": e.text_in(text)} for e in entities]
    return reply


async def _execute(engine: Engine, cmds, skill, spec, state: FlowState, message, context):
    lang = state.lang or "zh"
    now_ms = engine._now_ms()
    first = cmds[0]
    act = first.act
    if act is Act.CANCEL:
        end_flow(context, FlowEnd.CANCELLED, now_ms)
        return _reply(skill, state, localized(spec.get("cancelled"), lang) or CANCELLED[lang])
    if act is Act.SWITCH:
        offer = state.offer or {}
        end_flow(context, FlowEnd.SWITCHED, now_ms)
        target = engine._by_id.get(offer.get("skill"))
        if target is not None:
            decision = target.decide(offer["text"])
            if decision.intent == offer["intent"]:
                again = dataclasses.replace(message, text=offer["text"])
                return await engine._start(target, decision, again, context)
        return None
    if act is Act.RESUME:
        state.offer = None
        state.awaiting = Awaiting.SLOT.value if state.pending else Awaiting.CONFIRM.value
        _save(context, state)
        return await _resume(engine, _reply(skill, state, ""), skill, spec, state, message, context)
    if state.awaiting == Awaiting.OFFER.value:  # anything else: the offer lapses
        state.offer = None
        state.awaiting = Awaiting.SLOT.value if state.pending else Awaiting.CONFIRM.value
    if state.awaiting == Awaiting.SUGGESTION.value and act not in (Act.CONFIRM, Act.DENY):
        state.awaiting, state.suggestion = Awaiting.SLOT.value, None  # the question lapses
    if act is Act.DIGRESSION:
        return await _digression(engine, first, skill, spec, state, message, context)
    if act is Act.SUGGEST:
        state.awaiting = Awaiting.SUGGESTION.value
        state.suggestion = {"slot": first.slot, "value": first.value}
        _save(context, state)
        return _reply(skill, state, SUGGEST[lang].format(value=_show(first.value, lang)))
    if act is Act.NO_VALUE:
        state.asks += 1
        if state.asks > 3:
            end_flow(context, FlowEnd.GAVE_UP, now_ms)

            said = _intent_name(skill, state.intent, lang)
            text = GAVE_UP[lang].format(what=said, example=said)
            return _reply(skill, state, text)
        _save(context, state)
        ask = await _ask(engine, skill, spec, state, message, context)
        return _reply(skill, state, f"{NOT_UNDERSTOOD[lang]}{ask}")
    if act is Act.DENY:
        if state.awaiting == Awaiting.SUGGESTION.value:
            state.awaiting, state.suggestion = Awaiting.SLOT.value, None
            _save(context, state)
            return _reply(skill, state, await _ask(engine, skill, spec, state, message, context))
        label = slot_label(_wanted(spec)[0], skill.manifest.slots.get(_wanted(spec)[0], {}), lang)
        _save(context, state)
        return _reply(skill, state, WHAT_TO_CHANGE[lang].format(label=label))
    acks: list[str] = []
    ask_next: str | None = None
    confirmed = False
    for cmd in cmds:
        if cmd.act is Act.CONFIRM and cmd.slot is None:
            confirmed = True
        elif cmd.act in (Act.SET_SLOT, Act.CORRECT_SLOT, Act.CONFIRM):
            state.slots[cmd.slot] = cmd.value
            if cmd.entity is not None:
                state.entities[cmd.slot] = cmd.entity
            else:
                state.entities.pop(cmd.slot, None)
            if cmd.act is Act.CORRECT_SLOT:
                label = slot_label(cmd.slot, skill.manifest.slots.get(cmd.slot, {}), lang)
                shown = _show(cmd.value, lang)
                if lang == "en" and not shown.isascii() and cmd.entity:
                    shown = f"{shown} ({cmd.entity['text']})"  # 年假 (annual leave)
                acks.append(CORRECTED[lang].format(label=label, value=shown))
        elif cmd.act is Act.CHANGE_SLOT:
            state.slots.pop(cmd.slot, None)
            state.entities.pop(cmd.slot, None)
            ask_next = cmd.slot
    state.suggestion = None
    prefix = "".join(a + "\n" for a in acks)
    missing = [s["name"] for s in missing_slots(spec, state.slots)]
    if ask_next is None and missing:
        ask_next = missing[0]
    if ask_next is not None:
        if ask_next != state.pending:
            state.asks = 1
        state.pending, state.awaiting = ask_next, Awaiting.SLOT.value
        _save(context, state)
        ask = await _ask(engine, skill, spec, state, message, context)
        return _reply(skill, state, prefix + ask)
    if spec.get("confirm") and not confirmed:
        state.pending, state.awaiting, state.asks = "", Awaiting.CONFIRM.value, 1
        _save(context, state)
        return _reply(
            skill, state, prefix + await _ask(engine, skill, spec, state, message, context)
        )
    end_flow(context, FlowEnd.COMPLETED, now_ms)
    resp = skill.manifest.intents[state.intent]
    reply = await engine._execute(
        skill, state.intent, resp, state.slots, message, context, 1.0, entities=state.entities
    )
    reply.source = "dialogue"
    if prefix:
        reply.text = prefix + reply.text
    return reply


STALE = {
    "zh": "刚才的「{what}」已经{ended}，这个回答没有用上。需要的话请重新告诉我，例如「{what}」。",
    "en": "Your earlier request ({what}) has {ended}, so this answer was not used. To start "
    'again, say e.g. "{what}".',
}
_ENDED = {
    "zh": {"completed": "办完", "cancelled": "取消", "timeout": "超时结束"},
    "en": {"completed": "been completed", "cancelled": "been cancelled", "timeout": "timed out"},
}
STALE_WINDOW_S = 600.0  # an answer this long after its flow ended is read as a new message


def stale_flow_skill(engine: Engine, context: dict):
    """The skill of the flow that ended within ``STALE_WINDOW_S`` and whose questions a
    message may still answer (no flow, no clarifying question pending), or None."""
    last = context.get("last_flow")
    if not last or context.get("flow") or context.get("clarify"):
        return None
    if engine._now_ms() - int(last.get("ended_ms", 0)) > STALE_WINDOW_S * 1000:
        return None
    return engine._by_id.get(last.get("skill"))


def stale_answer(engine: Engine, message: Message, context: dict) -> Reply | None:
    """An answer to a question no longer pending (是 / 否, 三天, 不对，改成下周一 after the
    form ended): say so instead of reading it as a new request. None otherwise: a message a
    rule claims, or that confidently asks for the same thing again, is a new request."""
    skill = stale_flow_skill(engine, context)
    last = context.get("last_flow")
    spec = flow_spec(engine._by_id, last)[1] if skill else None
    if spec is None:
        return None
    text = message.text
    if not (is_yes(text) or is_no(text)):
        entities = engine.entities(skill, text)
        state = FlowState(last["skill"], last["intent"], dict(last.get("slots", {})), "", 0)
        wanted = _wanted(spec) + list(spec.get("optional", []))
        found = _pick(_values(text, entities, wanted, skill.manifest.slots, state, []))
        if not found or _leftover(text, [f.entity for f in found.values()], [], {}) > 2:
            return None
        other, d = engine.route(text)
        if d is not None and (
            d.source == "rule"
            or (
                d.intent == last["intent"]
                and d.confidence >= 0.8
                and not _CORRECTION.search(text)  # 不对，改成下周一 asks for no new form
            )
        ):
            return None
    lang = engine._lang_of(text, context)
    what = _intent_name(skill, last["intent"], lang)
    ended = _ENDED[lang].get(last.get("ended"), "结束" if lang == "zh" else "ended")
    context.pop("last_flow", None)  # said once
    return Reply(
        text=STALE[lang].format(what=what, ended=ended),
        skill_id=skill.manifest.id,
        intent=last["intent"],
        source="dialogue",
        commands=[{"act": "stale_answer"}],
    )
