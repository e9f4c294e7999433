"""Near-ties: a short clarifying question with quick replies (您是想：请假 / 查年假余额？,
"Did you mean: ...?"), and resolving the user's pick (a button, the option's label typed,
its number, or a message the arbitration gives to one of the options).

The pending question lives in the conversation context (``context["clarify"]``: the
original message and the options as skill id + intent + label); it is asked once: any
answer that picks no option is handled as a new message."""

from __future__ import annotations

import re

from ..nlu.classifier import Decision
from .arbitration import ArbitrationOptions, Candidate, arbitrate
from .conversation import Reply
from .fallback import label

__all__ = ["QUESTION", "clarify_reply", "resolve_pick"]

QUESTION = {"zh": "您是想：{options}？", "en": "Did you mean: {options}?"}
TITLE = {"zh": "您是想：", "en": "Did you mean:"}
_SEP = {"zh": " / ", "en": " / "}
_ORDINALS = {
    0: r"1|１|一|第一个?|第1个|前者|the first|first|first one|option 1",
    1: r"2|２|二|第二个?|第2个|后者|the second|second|second one|option 2",
    2: r"3|３|三|第三个?|第3个|the third|third|third one|option 3",
}
_STRIP = re.compile(r"[\s!！。.?？~～,，、:：;；…]+")


def clarify_reply(options: list[Candidate], text: str, lang: str, context: dict) -> Reply:
    """Ask which of ``options`` the user meant; remember the question in ``context``."""
    labels: list[str] = []
    kept: list[dict] = []
    for c in options:
        name = label(c.skill, c.intent, lang)
        if name in labels:
            continue
        labels.append(name)
        kept.append({"skill": c.skill.manifest.id, "intent": c.intent, "label": name})
    context["clarify"] = {"text": text, "options": kept}
    question = QUESTION[lang].format(options=_SEP[lang].join(labels))
    best = options[0]
    return Reply(
        text=question,
        format="card",
        card={
            "title": TITLE[lang],
            "text": question,
            "buttons": [{"title": name, "action": name} for name in labels],
        },
        intent="clarify",
        confidence=best.confidence,
        alternatives=[(c.intent, round(c.confidence, 4)) for c in options],
        source="clarify",
    )


def _bare(text: str) -> str:
    return _STRIP.sub(" ", text).strip().lower()


def resolve_pick(pending: dict, text: str, skills: list, options: ArbitrationOptions | None):
    """``(skill, Decision, original text)`` of the option ``text`` picks, or None."""
    by_id = {s.manifest.id: s for s in skills}
    choices = [o for o in pending.get("options", []) if o.get("skill") in by_id]
    if not choices:
        return None
    bare = _bare(text)
    pick = None
    for o in choices:
        if bare == _bare(o["label"]):
            pick = o
    if pick is None:
        for i, o in enumerate(choices):
            if i in _ORDINALS and re.fullmatch(rf"(?:{_ORDINALS[i]})", bare, re.IGNORECASE):
                pick = o
    if pick is None:
        out = arbitrate(skills, text, options)
        cands = [(out.skill, out.decision.intent)] if out.served else []
        cands += [(c.skill, c.intent) for c in out.clarify]
        for skill, intent in cands:
            for o in choices:
                if skill.manifest.id == o["skill"] and intent == o["intent"]:
                    pick = o
                    break
            if pick is not None:
                break
    if pick is None:
        return None
    decision = Decision(pick["intent"], 1.0, [], "clarify", f"clarify:{pick['label']}")
    return by_id[pick["skill"]], decision, pending.get("text", text)
