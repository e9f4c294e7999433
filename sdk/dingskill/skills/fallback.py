"""Out of scope: the fallback text and the quick-reply suggestions of the closest intents."""

from __future__ import annotations

from ..text import detect_language
from .conversation import Reply

__all__ = ["FALLBACK", "SUGGEST_TITLE", "fallback_text", "suggest", "fallback_reply", "example"]

FALLBACK = {
    "zh": "抱歉，我还不太明白您的意思。可以换个说法吗？",
    "en": "Sorry, I didn't get that. Could you say it another way?",
}
SUGGEST_TITLE = {"zh": "您是不是想：", "en": "Did you mean:"}


def _lang(text: str) -> str:
    return "en" if detect_language(text) == "en" else "zh"


def fallback_text(skills: list, configured: str | dict | None, text: str) -> str:
    """The fallback sentence: the operator's (``configured``), a lone skill's own, or the
    built-in one in the language of ``text``."""
    if isinstance(configured, str):
        return configured
    if configured is None and len(skills) == 1 and skills[0].manifest.fallback:
        return skills[0].manifest.fallback
    table = {**FALLBACK, **(configured or {})}
    return table[_lang(text)]


def skill_with_intent(skills: list, name: str):
    """The first skill whose manifest declares intent ``name``, or None."""
    for skill in skills:
        if name in skill.manifest.intents:
            return skill
    return None


def example(skill, intent: str) -> str:
    """A user-facing label for ``intent``: the manifest's ``example``, else its first trigger
    word, else the intent name in words."""
    resp = skill.manifest.intents.get(intent) or {}
    if resp.get("example"):
        return resp["example"]
    for t in skill.manifest.triggers:
        if t["intent"] == intent and t.get("words"):
            return t["words"][0]
    return intent.replace("_", " ")


def suggest(reply: Reply, lang: str, skills: list) -> Reply:
    """Out of scope: offer the closest in-scope intents as card buttons (quick replies)."""
    options = []
    for intent, p in reply.alternatives:
        if intent == "oos" or p < 0.05:
            continue
        skill = skill_with_intent(skills, intent)
        if skill is None:
            continue
        label = example(skill, intent)
        if label and label not in options:
            options.append(label)
    if not options:
        return reply
    reply.format = "card"
    reply.card = {
        "title": SUGGEST_TITLE[lang],
        "text": reply.text,
        "buttons": [{"title": o, "action": o} for o in options[:3]],
    }
    return reply


def fallback_reply(text: str, decision, lang: str, fallback: str, note: str = "") -> Reply:
    """The out-of-scope reply to ``text`` (``fallback`` after ``note``), without buttons."""
    return Reply(
        text=(note + "\n" if note else "") + fallback,
        intent="oos",
        confidence=decision.confidence if decision else 0.0,
        alternatives=list(decision.alternatives) if decision else [],
        source="fallback",
    )
