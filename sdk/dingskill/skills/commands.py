"""Understanding for the flow engine: a message becomes a short list of typed **commands**.

While a form (a multi-turn flow) waits, what the user says is turned into commands such as
*set slot*, *correct slot*, *change a slot by naming it*, *confirm* / *deny*, *cancel* or
*digression*. They are computed from the entities of the message (rule + system + model, see
:mod:`dingskill.skills.entities`), the routing decision across all skills and a few rules
(correction markers, yes / no, slot names, questions); the flow engine
(:mod:`dingskill.skills.flow`) executes them against the typed flow state and never looks at
the text. Each command is JSON-able (``Reply.commands``), so the widget shows them per turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..nlu.entity import Entity
from ..text import detect_language
from .dialogue import Awaiting, FlowState, is_cancel
from .slots import closest_word, slot_type, slot_value

__all__ = [
    "Act",
    "Command",
    "Digression",
    "understand",
    "is_yes",
    "is_no",
    "slot_label",
]


class Act(str, Enum):
    """What a command asks the flow engine to do."""

    SET_SLOT = "set_slot"  # a value for an empty slot (asked for or not)
    CORRECT_SLOT = "correct_slot"  # a new value for a filled slot (不对，改成下周一 / actually ...)
    CHANGE_SLOT = "change_slot"  # a slot named without a value (改一下日期): ask it again
    SUGGEST = "suggest"  # a value with a typo (年价): ask whether the closest value is meant
    CONFIRM = "confirm"  # yes to the summary or to the suggested value
    DENY = "deny"  # no to the summary or to the suggested value
    CANCEL = "cancel"  # 算了 / 取消 / cancel
    SWITCH = "switch"  # yes to leaving this form for the other request
    RESUME = "resume"  # no to leaving it
    DIGRESSION = "digression"  # answered outside the form, which then resumes
    NO_VALUE = "no_value"  # nothing usable for the form


class Digression(str, Enum):
    """Why a message is answered outside the form (it never fills a slot)."""

    INTENT = "intent"  # another intent (any skill) claims it by a rule or confidently
    SMALL_TALK = "small_talk"  # 你好 / thanks / bye
    COMMAND = "command"  # /help ...
    OUT_OF_SCOPE = "out_of_scope"  # a question nobody serves (明天北京会下雨吗)


@dataclass
class Command:
    """One typed command; ``decision`` (routing) stays out of the JSON form."""

    act: Act
    slot: str | None = None
    value: Any = None
    entity: dict | None = None  # the entity the value came from, with its ``text``
    digression: Digression | None = None
    decision: Any = field(default=None, repr=False, compare=False)
    skill: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d: dict = {"act": self.act.value}
        if self.slot is not None:
            d["slot"] = self.slot
        if self.value is not None:
            d["value"] = self.value
        if self.digression is not None:
            d["digression"] = self.digression.value
        if self.decision is not None:
            d["intent"] = self.decision.intent
        return d


# -- rules ----------------------------------------------------------------------------------------
_STRIP = re.compile(r"[\s,，。.!！?？~～、:：;；…\"'“”‘’「」()（）]+")
# one confirmation word or phrase; a message of several ("yep, that's right", "对的没错",
# "👍 sounds good") is one answer too
_YES_WORDS = (
    r"是|是的|对|对的|好|好的|嗯|嗯嗯|确认|确定|没问题|可以|行|提交|没错|就这样|正确|"
    r"yes|y|yeah|yep|yup|ok|okay|sure|confirm|confirmed|correct|right|submit|go ahead|"
    r"thats right|that is right|thats correct|yes please|sounds good|looks good|all good|"
    r"good|great|perfect|fine|exactly|absolutely|👍|👌|✅|✔️|✔"
)
_NO_WORDS = (
    r"否|不|不是|不是的|不对|不对的|不要|错了|有误|不行|"
    r"no|n|nope|nah|wrong|not right|incorrect|thats wrong|not quite|👎|❌"
)
_TAIL = r"(?:吧|啊|呀|的|哦|喔)?"
_APOSTROPHE = re.compile(r"['’]")  # that's -> thats (the strip would split it)
_YES = re.compile(rf"^(?:{_YES_WORDS}){_TAIL}(?:\s*(?:{_YES_WORDS}){_TAIL})*$", re.I)
_NO = re.compile(rf"^(?:{_NO_WORDS}){_TAIL}(?:\s*(?:{_NO_WORDS}){_TAIL})*$", re.I)
# a message that corrects a value it gave before
_CORRECTION = re.compile(
    r"不对|不是|错了|改成|改为|改到|换成|换到|改一下|改下|哦不|噢不|喔不|应该是|我是说|更正|"
    r"\bactually\b|\bi meant\b|\bi mean\b|\bchange\b|\bmake it\b|\binstead\b|\bno wait\b|"
    r"\bcorrection\b|\bsorry\b|\bwrong\b|\brather\b",
    re.I,
)
# a value right after one of these is the one rejected (是年假不是病假, not Monday but ...)
_NEGATION = re.compile(r"(不是|不要|而不是|并非|\bnot\b|\binstead of\b|\brather than\b)\s*$", re.I)
# words around a bare answer that add nothing (what is left decides: answer or question)
_FILLER = re.compile(
    r"不对|不是|错了|改成|改为|改到|换成|换到|改一下|改下|哦不|噢不|喔不|应该是|我是说|更正|"
    r"那就|就是|是|的|吧|啊|呀|了|嗯|哦|噢|喔|好|从|开始|起|那|就|请|我|要|想|休|一共|共|把|改|"
    r"\b(?:actually|no|wait|sorry|i|meant|mean|make|it|change|to|the|a|an|for|from|starting|"
    r"start|please|instead|ok|okay|well|um|uh|lets|let's|say|on|of|is|its|it's|and|then)\b",
    re.I,
)
_QUESTION_ZH = re.compile(r"[吗嘛么呢][\s?？!！。~]*$|[?？]|什么|怎么|为什么|多少|哪里|哪儿|谁")
_QUESTION_EN = re.compile(
    r"\?|^(?:what|where|when|why|how|who|which|is|are|can|could|do|does|will|would|should)\b",
    re.I,
)
# names a slot is known by when its manifest gives no ``label`` / ``aliases``
_TYPE_NAMES = {
    "date": ["日期", "哪天", "date", "day"],
    "time": ["时间", "几点", "time"],
    "datetime": ["时间", "time"],
    "date_range": ["日期", "dates"],
    "duration": ["天数", "几天", "时长", "days", "length", "duration"],
    "number": ["数量", "number"],
    "amount": ["金额", "amount"],
}


def _bare(text: str) -> str:
    return _STRIP.sub(" ", text).strip()


def is_yes(text: str) -> bool:
    return bool(_YES.match(_bare(_APOSTROPHE.sub("", text))))


def is_no(text: str) -> bool:
    return bool(_NO.match(_bare(_APOSTROPHE.sub("", text))))


def slot_names(name: str, spec: dict) -> list[str]:
    """The words a user may name slot ``name`` by: its ``label`` (both languages), its
    ``aliases``, else names that fit its type."""
    out: list[str] = []
    label = spec.get("label")
    if isinstance(label, dict):
        out += [str(v) for v in label.values()]
    elif label:
        out.append(str(label))
    out += [str(a) for a in spec.get("aliases", [])]
    if not out:
        out = list(_TYPE_NAMES.get(slot_type(spec), []))
    return [n for n in out if n]


def slot_label(name: str, spec: dict, lang: str) -> str:
    """How replies call slot ``name`` in ``lang``."""
    label = spec.get("label")
    if isinstance(label, dict):
        return str(label.get(lang) or next(iter(label.values()), name))
    if label:
        return str(label)
    return name.replace("_", " ")


def is_question(text: str) -> bool:
    return bool(_QUESTION_ZH.search(text) or _QUESTION_EN.search(text.strip()))


def _named(text: str, slots: list[str], declared: dict, entities: list[Entity] = ()) -> list[str]:
    """The slots ``text`` names (日期, "the date"), outside the entities' spans ("1 day"
    names no slot)."""
    chars = list(text.lower())
    for e in entities:
        chars[e.start : e.end] = [" "] * (e.end - e.start)
    low = "".join(chars)
    found = []
    for name in slots:
        for alias in sorted(slot_names(name, declared.get(name, {})), key=len, reverse=True):
            a = alias.lower()
            if a.isascii():
                if re.search(rf"\b{re.escape(a)}\b", low):
                    found.append(name)
                    break
            elif a in low:
                found.append(name)
                break
    return found


def _leftover(text: str, used: list[Entity], named: list[str], declared: dict) -> int:
    """How much of ``text`` is neither a used entity, a slot's name nor a filler word: Han
    characters count one each, other words one each."""
    chars = list(text)
    for e in used:
        chars[e.start : e.end] = [" "] * (e.end - e.start)
    rest = "".join(chars)
    for name in named:
        for alias in slot_names(name, declared.get(name, {})):
            rest = re.sub(re.escape(alias), " ", rest, flags=re.I)
    rest = _FILLER.sub(" ", _STRIP.sub(" ", rest))
    han = len(re.findall(r"[\u3400-\u9fff]", rest))
    words = len(re.findall(r"[A-Za-z0-9]+", rest))
    return han + words


@dataclass
class _Found:
    slot: str
    value: Any
    entity: Entity
    negated: bool


def _values(
    text: str,
    entities: list[Entity],
    wanted: list[str],
    declared: dict,
    state: FlowState,
    named: list[str],
    correcting: bool = False,
) -> list[_Found]:
    """Slot values from entities: each entity goes to the first slot it fits, named slots
    first, then the pending slot, then empty slots, then filled ones (a correction); one
    entity may fill slots of different types (a datetime: the date and the time)."""
    order = [*named]
    if correcting:  # 不对，改成下周一: a filled slot before the one asked for
        order += [s for s in wanted if s not in order and state.slots.get(s) not in (None, "")]
    if state.pending and state.pending not in order:
        order.append(state.pending)
    order += [s for s in wanted if s not in order and state.slots.get(s) in (None, "")]
    order += [s for s in wanted if s not in order]
    found: list[_Found] = []
    for e in entities:
        used_types: set[str] = set()
        for name in order:
            spec = declared.get(name, {})
            kind = slot_type(spec)
            if kind in used_types or kind == "text":
                continue
            value = slot_value(name, spec, e.entity, e.value)
            if value is None and name == state.pending and e.entity == "number":
                # a bare number answers "how many days?" / "how much?"
                if kind == "duration":
                    unit = spec.get("unit", "day")
                    value = slot_value(name, spec, "duration", {"amount": e.value, "unit": unit})
                elif kind == "amount":
                    value = slot_value(name, spec, "amount", {"amount": e.value})
            if value is None:
                continue
            negated = bool(_NEGATION.search(text[: e.start]))
            found.append(_Found(name, value, e, negated))
            used_types.add(kind)
    return found


def _pick(found: list[_Found]) -> dict[str, _Found]:
    """One value per slot: not negated ("是年假不是病假"), else the last said ("病假改成年假")."""
    out: dict[str, _Found] = {}
    for f in found:
        cur = out.get(f.slot)
        if cur is None or not f.negated or cur.negated:
            out[f.slot] = f
    return out


def _entity_dict(e: Entity, text: str) -> dict:
    return {**e.to_dict(), "text": e.text_in(text)}


def understand(
    text: str,
    state: FlowState,
    flow_spec: dict,
    declared: dict,
    entities: list[Entity],
    route: Callable[[], tuple],
    small_talk: Any = None,
    long_answer: Callable[[str], bool] | None = None,
    digression_confidence: float = 0.8,
) -> list[Command]:
    """The commands of one message while the form ``state`` waits.

    ``route()`` gives ``(skill, Decision)`` across all skills (called only when the message
    is more than a bare answer); ``small_talk``: the small-talk kind of the whole message."""
    wanted = [s["name"] for s in flow_spec["slots"]] + [
        s for s in flow_spec.get("optional", []) if s not in (x["name"] for x in flow_spec["slots"])
    ]
    bare = _bare(text)
    if state.awaiting == Awaiting.OFFER.value:
        if is_yes(text):
            return [Command(Act.SWITCH)]
        if is_no(text) or re.fullmatch(r"继续|continue", bare, re.I):
            return [Command(Act.RESUME)]
    if is_cancel(text, flow_spec.get("cancel_words")):
        return [Command(Act.CANCEL)]
    if state.awaiting == Awaiting.SUGGESTION.value and state.suggestion:
        if is_yes(text):
            return [Command(Act.CONFIRM, state.suggestion["slot"], state.suggestion["value"])]
        if is_no(text):
            return [Command(Act.DENY, state.suggestion["slot"])]
    confirming = state.awaiting == Awaiting.CONFIRM.value
    if confirming and is_yes(text):
        return [Command(Act.CONFIRM)]
    if confirming and is_no(text):
        return [Command(Act.DENY)]

    named = _named(text, wanted, declared, entities)
    correcting = bool(_CORRECTION.search(text))
    found = _pick(_values(text, entities, wanted, declared, state, named, correcting))
    used = [f.entity for f in found.values()]
    leftover = _leftover(text, used, named, declared)
    answer_like = (bool(found) or (bool(named) and correcting)) and leftover <= 2

    if text.lstrip().startswith("/"):
        return [Command(Act.DIGRESSION, digression=Digression.COMMAND)]
    if small_talk is not None and not found:
        return [Command(Act.DIGRESSION, digression=Digression.SMALL_TALK)]
    short = long_answer is not None and not long_answer(text)
    near = _near_value(state, declared, bare) if not found and not confirming and short else None
    if near is not None:  # 年价, 调修: a typo of a listed answer, not another request
        return [near]
    if not answer_like and bare:
        other, d = route()
        said = detect_language(text)
        if (
            other is not None
            and d is not None
            and d.intent not in ("oos", state.intent)
            and (d.source == "rule" or d.confidence >= digression_confidence)
            # a short reply (随便, 哈哈哈) leaves the form only for a rule or a skill of its
            # own language: another language's model is not sure enough of so little text
            and (not short or d.source == "rule" or said in other.manifest.languages)
        ):
            return [Command(Act.DIGRESSION, digression=Digression.INTENT, decision=d, skill=other)]
        own = other is not None and d is not None and d.intent == state.intent
        confident_oos = (
            other is None
            and d is not None
            and d.intent == "oos"
            and d.confidence >= digression_confidence
            and (bool(found) or long_answer is None or long_answer(text))
        )
        if not own and (is_question(text) or confident_oos):
            return [Command(Act.DIGRESSION, digression=Digression.OUT_OF_SCOPE, decision=d)]

    cmds: list[Command] = []
    for name, f in found.items():
        filled = state.slots.get(name) not in (None, "")
        if filled and state.slots.get(name) == f.value and not confirming:
            continue
        act = Act.CORRECT_SLOT if filled else Act.SET_SLOT
        cmds.append(Command(act, name, f.value, _entity_dict(f.entity, text)))
    for name in named:
        if name not in found:
            cmds.append(Command(Act.CHANGE_SLOT, name))
    if cmds:
        return cmds
    if found:  # the same values again: nothing new, ask on
        return [Command(Act.NO_VALUE)]
    pending = state.pending and declared.get(state.pending, {})
    if pending and not confirming:
        if slot_type(pending) == "text" and bare:
            return [Command(Act.SET_SLOT, state.pending, text.strip())]
        near = _near_value(state, declared, bare)
        if near is not None:
            return [near]
    return [Command(Act.NO_VALUE)]


def _near_value(state: FlowState, declared: dict, bare: str) -> Command | None:
    """A listed value of the pending slot the answer is a typo of: set it when close
    ("anual leave"), else ask whether it is meant (年价 -> 年假?)."""
    spec = declared.get(state.pending) if state.pending else None
    if not spec or not spec.get("words") or slot_type(spec) not in ("words", "entity") or not bare:
        return None
    near = closest_word(spec["words"], bare)
    if near is None:
        return None
    value, sim = near
    if sim >= 0.8:
        return Command(Act.SET_SLOT, state.pending, value)
    return Command(Act.SUGGEST, state.pending, value)
