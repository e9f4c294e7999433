"""Out of scope and help: the fallback reply says what the loaded skills can do, in the user's
language, with quick-reply buttons (the closest intents first); after repeated
misunderstanding it offers the human handover the operator configured. Also the bot's own
reply language and the short labels of intents."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from functools import lru_cache

from ..text import detect_language
from .arbitration import SMALL_TALK_INTENTS
from .conversation import Reply
from .dialogue import CANCEL_WORDS

__all__ = [
    "FALLBACK",
    "SUGGEST_TITLE",
    "CAN_DO",
    "fallback_text",
    "suggest",
    "fallback_reply",
    "example",
    "label",
    "reply_language",
    "is_acknowledgement",
    "ack_reply",
    "is_bare_cancel",
    "nothing_to_cancel_reply",
    "is_handover_request",
    "handover_reply",
    "count_miss",
]

FALLBACK = {
    "zh": "抱歉，我还不太明白您的意思。",
    "en": "Sorry, I didn't get that.",
}
CAN_DO = {"zh": "我可以帮您：{what}。", "en": " I can help with: {what}."}
SUGGEST_MIN = 0.1  # an alternative below this probability is not offered
SUGGEST_TITLE = {"zh": "您是不是想：", "en": "Did you mean:"}
ACK = {"zh": "好的。还有什么可以帮您？", "en": "OK. Anything else I can help with?"}
NOTHING_TO_CANCEL = {
    "zh": "好的。目前没有正在办理的事项，不需要取消。还有什么可以帮您？",
    "en": "OK. Nothing is in progress, so there is nothing to cancel. Anything else?",
}
HANDOVER = {
    "zh": "看来我一直没能理解您的问题，抱歉。您可以联系人工：{contact}。",
    "en": "It seems I keep misunderstanding you, sorry. You can reach a person: {contact}.",
}
HANDOVER_ASKED = {
    "zh": "好的，人工服务请联系：{contact}。",
    "en": "Sure: to reach a person, contact {contact}.",
}
HANDOVER_NONE = {
    "zh": "抱歉，这个机器人还没有配置人工联系方式，请联系您的管理员。",
    "en": "Sorry, no human contact is configured for this bot; please ask your administrator.",
}
HANDOVER_NOTE = {
    "zh": "用户 {sender} 需要人工帮助。最近的消息：\n{lines}",
    "en": "User {sender} needs a person's help. Recent messages:\n{lines}",
}
_ACK = re.compile(
    r"^(好|好的|好吧|嗯|嗯嗯|哦|噢|行|收到|知道了|明白了?|了解|ok|okay|k|kk|got it|alright|fine|"
    r"cool|great|sure|noted)$",
    re.IGNORECASE,
)
_HANDOVER = re.compile(
    r"^(转人工|人工|人工客服|人工服务|找人工|真人|我要找人|联系人工|human|agent|a human|"
    r"talk to (a )?(human|person|someone)|real person|operator)$",
    re.IGNORECASE,
)
_BARE = re.compile(r"[\s!！。.?？~～,，、:：;；…]+")


def _lang(text: str) -> str:
    return "en" if detect_language(text) == "en" else "zh"


def reply_language(text: str, history: list, configured: str = "auto", default: str = "zh") -> str:
    """The language of the bot's own words (fallback, clarifying question, handover):
    ``configured`` when it is ``zh`` or ``en``; with ``auto``, the message's language, or
    for a message without letters or Han characters (emoji, digits, a command) the
    conversation's so far, else ``default``."""
    if configured in ("zh", "en"):
        return configured
    if re.search(r"[A-Za-z\u3400-\u9fff]", text) and not text.lstrip().startswith("/"):
        return _lang(text)
    for turn in reversed(history or []):
        user = turn.get("user", "")
        if re.search(r"[A-Za-z\u3400-\u9fff]", user) and not user.lstrip().startswith("/"):
            return _lang(user)
    return default


def fallback_text(skills: list, configured: str | dict | None, text: str, lang: str = "") -> str:
    """The fallback sentence: the operator's (``configured``), a lone skill's own, or the
    built-in one in ``lang`` (default: the language of ``text``)."""
    if isinstance(configured, str):
        return configured
    if configured is None and len(skills) == 1 and skills[0].manifest.fallback:
        return skills[0].manifest.fallback
    table = {**FALLBACK, **(configured or {})}
    return table[lang or _lang(text)]


def skill_with_intent(skills: list, name: str):
    """The first skill whose manifest declares intent ``name``, or None."""
    for skill in skills:
        if name in skill.manifest.intents:
            return skill
    return None


def example(skill, intent: str) -> str:
    """A user-facing utterance for ``intent``: the manifest's ``example``, else its first
    trigger word, else the intent name in words."""
    resp = skill.manifest.intents.get(intent) or {}
    if resp.get("example"):
        return resp["example"]
    for t in skill.manifest.triggers:
        if t["intent"] == intent and t.get("words"):
            return t["words"][0]
    return intent.replace("_", " ")


def label(skill, intent: str, lang: str = "zh") -> str:
    """A short name of ``intent`` for a quick reply: the manifest's ``label`` (in ``lang``
    when given per language), else :func:`example`."""
    resp = skill.manifest.intents.get(intent) or {}
    got = resp.get("label")
    if isinstance(got, dict):
        got = got.get(lang) or next(iter(got.values()), None)
    return got or example(skill, intent)


def _headline(skills: list, lang: str) -> list[tuple[object, str]]:
    """The intents a skill offers first (those with a label or example), skills of ``lang``
    first."""
    ordered = sorted(skills, key=lambda s: lang not in s.manifest.languages)
    out = []
    for skill in ordered:
        for intent, resp in skill.manifest.intents.items():
            if isinstance(resp, dict) and (resp.get("label") or resp.get("example")):
                out.append((skill, intent))
    return out


# (skills, lang) -> the labels of their headline intents, in order, each once: the same for
# every out-of-scope reply until the skills change (a reload builds new skill objects, which
# hash by identity, so its set gets its own entry); the key keeps its skills alive, so only
# the few sets used last are kept: an old reload's skills are let go soon after
_HEADLINES: OrderedDict[tuple, tuple[str, ...]] = OrderedDict()
_HEADLINES_KEPT = 8
_HEADLINES_LOCK = threading.Lock()  # engines on several loops (notebooks, tests) share it


def _headline_labels(skills: list, lang: str) -> tuple[str, ...]:
    key = (tuple(skills), lang)
    with _HEADLINES_LOCK:
        labels = _HEADLINES.get(key)
        if labels is not None:
            _HEADLINES.move_to_end(key)
            return labels
    found: list[str] = []
    for skill, intent in _headline(skills, lang):
        text = label(skill, intent, lang)
        if text not in found:
            found.append(text)
    with _HEADLINES_LOCK:
        _HEADLINES[key] = labels = tuple(found)
        while len(_HEADLINES) > _HEADLINES_KEPT:
            _HEADLINES.popitem(last=False)
    return labels


def suggest(reply: Reply, lang: str, skills: list, fill: bool = False, limit: int = 4) -> Reply:
    """Quick-reply buttons on an out-of-scope reply: the closest in-scope intents, then (with
    ``fill``) what the loaded skills offer first. The button sends its label as a message."""
    options: list[str] = []
    for intent, p in reply.alternatives:
        # small talk is never offered, nor an intent the model barely considered
        if intent == "oos" or intent in SMALL_TALK_INTENTS or p < SUGGEST_MIN:
            continue
        skill = skill_with_intent(skills, intent)
        if skill is None:
            continue
        text = label(skill, intent, lang)
        if text and text not in options:
            options.append(text)
    if fill:
        for text in _headline_labels(skills, lang):
            if len(options) >= limit:
                break
            if text not in options:
                options.append(text)
    options = options[:limit]
    if not options:
        return reply
    reply.format = "card"
    reply.card = {
        "title": SUGGEST_TITLE[lang],
        "text": reply.text,
        "buttons": [{"title": o, "action": o} for o in options],
    }
    return reply


def can_do(skills: list, lang: str) -> str:
    """ "I can help with: ..." naming the loaded skills' headline intents (else the skills)."""
    names = list(_headline_labels(skills, lang))
    if not names:
        names = [s.manifest.name for s in skills]
    if not names:
        return ""
    sep = "、" if lang == "zh" else ", "
    return CAN_DO[lang].format(what=sep.join(names[:6]))


def fallback_reply(
    text: str, decision, lang: str, fallback: str, note: str = "", skills: list | None = None
) -> Reply:
    """The out-of-scope reply to ``text``: ``fallback`` after ``note``, then (when ``skills``
    are given and the fallback is the built-in one) what the bot can do, with buttons."""
    body = fallback
    if skills and fallback in FALLBACK.values():
        extra = can_do(skills, lang)
        body = f"{fallback}{extra}" if extra else fallback
    reply = Reply(
        text=(note + "\n" if note else "") + body,
        intent="oos",
        confidence=decision.confidence if decision else 0.0,
        alternatives=list(decision.alternatives) if decision else [],
        source="fallback",
    )
    if skills:
        suggest(reply, lang, skills, fill=True)
    return reply


@lru_cache(maxsize=256)
def _bare(text: str) -> str:
    # the acknowledgement, cancel and hand-over checks of one message each ask for it:
    # worked out once
    return _BARE.sub(" ", text).strip().lower()


def is_acknowledgement(text: str) -> bool:
    """ "ok", "好的", "收到": the user acknowledges; nothing to answer but a short word."""
    return bool(_ACK.match(_bare(text)))


def ack_reply(lang: str) -> Reply:
    return Reply(text=ACK[lang], intent="ack", confidence=1.0, source="smalltalk")


def is_bare_cancel(text: str) -> bool:
    """The whole message is a cancel word (算了, 取消, never mind), nothing more: with no
    form pending it cancels nothing ("取消会议室" is a request, not this)."""
    return _bare(text) in CANCEL_WORDS


def nothing_to_cancel_reply(lang: str) -> Reply:
    return Reply(text=NOTHING_TO_CANCEL[lang], intent="cancel", confidence=1.0, source="dialogue")


def is_handover_request(text: str) -> bool:
    """ "转人工", "human", "talk to a person": the user asks for a person."""
    return bool(_HANDOVER.match(_bare(text)))


def handover_reply(
    lang: str, contact: str | None, group: str | None, sender: str, history: list, asked: bool
) -> Reply:
    """Offer the operator's contact; with a ``group``, a follow-up tells that group (sent
    by the runtime through the robot OpenAPI) who needs help and what they wrote."""
    if not contact and not group:
        return Reply(text=HANDOVER_NONE[lang], intent="handover", confidence=1.0, source="handover")
    table = HANDOVER_ASKED if asked else HANDOVER
    reply = Reply(
        text=table[lang].format(contact=contact or group),
        intent="handover",
        confidence=1.0,
        source="handover",
    )
    if group:
        lines = "\n".join(f"- {t.get('user', '')}" for t in (history or [])[-3:])
        reply.followups = [
            {
                "group": group,
                "text": HANDOVER_NOTE[lang].format(sender=sender, lines=lines or "-"),
                "format": "text",
                "title": "",
            }
        ]
    return reply


def count_miss(context: dict, reply: Reply) -> int:
    """Consecutive out-of-scope replies in this conversation (reset by any other reply)."""
    if reply.source == "fallback" and reply.intent == "oos":
        context["misses"] = int(context.get("misses", 0)) + 1
    else:
        context.pop("misses", None)
    return int(context.get("misses", 0))
