"""Arbitration: which loaded skill (and which of its intents) a message goes to.

One decision across all loaded skills: a trigger rule of any skill wins outright, else the
most confident in-scope decision of the skills' intent models, else nothing (the caller
answers out of scope with the best decision seen, for suggestions)."""

from __future__ import annotations

from ..text import detect_language

__all__ = ["route"]


def route(skills: list, text: str):
    """(skill, Decision) of the winning skill, or (None, best Decision or None)."""
    best, best_skill = None, None
    lang = detect_language(text)
    for skill in skills:
        if lang != "mixed" and lang not in skill.manifest.languages and len(skills) > 1:
            # a Chinese-only model does not judge English text, and vice versa: only its
            # rules apply (and the model is not run for nothing)
            d = skill.match_rule(text)
            if d is not None:
                return skill, d
            continue
        d = skill.decide(text)
        if d.source == "rule":
            return skill, d
        if d.intent != "oos" and (
            best is None or best.intent == "oos" or d.confidence > best.confidence
        ):
            best, best_skill = d, skill
        elif best is None:
            best = d
    if best is not None and best.intent != "oos":
        return best_skill, best
    return None, best
