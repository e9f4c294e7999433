"""Trigger-word and regex rules applied before the intent model.

Rules are plain data so estimators holding them stay clonable::

    [{"intent": "ask_leave", "words": ["请假"], "patterns": ["^我要请.*假"]}]

Words match as substrings of the normalised text; patterns are regular expressions searched
in the normalised text on RE2, a linear-time engine (:mod:`dingskill.nlu.safe_regex`: no
back-references or look-around; such patterns are refused). The first matching rule (in list order; words before
patterns within a rule) wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .normalize import normalize_text
from .safe_regex import UnsafePattern, compile_safe, compile_union

__all__ = ["RuleError", "RuleMatch", "RuleSet"]

_KEYS = {"intent", "words", "patterns"}


class RuleError(ValueError):
    """A rule is malformed (names the rule index and the offending field or pattern)."""


@dataclass(frozen=True)
class RuleMatch:
    intent: str
    rule: str  # "word:<w>" or "regex:<pattern>"
    index: int


class RuleSet:
    """Compiled rules. ``match(text)`` returns a :class:`RuleMatch` or ``None``."""

    def __init__(self, rules: Sequence[Mapping] | None = None) -> None:
        self.rules = [dict(r) for r in validate_rules(rules)]
        self._compiled: list[tuple[str, list[tuple[str, str]], list[tuple[object, str]]]] = []
        for rule in self.rules:
            words = [(normalize_text(w), w) for w in rule.get("words", [])]
            pats = [(compile_safe(p), p) for p in rule.get("patterns", [])]
            self._compiled.append((rule["intent"], words, pats))
        # most texts match no pattern: one search of them all says so (None: one by one)
        self._any = compile_union([p for r in self.rules for p in r.get("patterns", [])])

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def intents(self) -> list[str]:
        return sorted({r["intent"] for r in self.rules})

    def match(self, text: str, normalized: bool = False) -> RuleMatch | None:
        """First rule matching ``text`` or ``None``."""
        norm = text if normalized else normalize_text(text)
        data = norm.encode()  # RE2 reads UTF-8: encoded once for every pattern
        patterns = self._any is None or self._any.search(data) is not None
        for i, (intent, words, pats) in enumerate(self._compiled):
            for w, orig in words:
                if w and w in norm:
                    return RuleMatch(intent, f"word:{orig}", i)
            for pat, src in pats if patterns else ():
                if pat.search(data):
                    return RuleMatch(intent, f"regex:{src}", i)
        return None


def validate_rules(rules: Sequence[Mapping] | None) -> list[Mapping]:
    """Check the rule list and return it; raise :class:`RuleError` naming what is wrong."""
    if rules is None:
        return []
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Sequence):
        raise RuleError(f"rules must be a list of dicts, got {type(rules).__name__}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise RuleError(f"rule {i}: expected a dict, got {type(rule).__name__}")
        unknown = set(rule) - _KEYS
        if unknown:
            raise RuleError(f"rule {i}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        intent = rule.get("intent")
        if not isinstance(intent, str) or not intent.strip():
            raise RuleError(f"rule {i}: 'intent' must be a non-empty string, got {intent!r}")
        if not rule.get("words") and not rule.get("patterns"):
            raise RuleError(f"rule {i} ({intent}): needs at least one of 'words' or 'patterns'")
        for key in ("words", "patterns"):
            vals = rule.get(key, [])
            if isinstance(vals, str) or not isinstance(vals, Sequence):
                raise RuleError(f"rule {i} ({intent}): '{key}' must be a list of strings")
            for j, v in enumerate(vals):
                if not isinstance(v, str) or not v.strip():
                    raise RuleError(
                        f"rule {i} ({intent}): {key}[{j}] must be a non-empty string, got {v!r}"
                    )
                if key == "patterns":
                    try:
                        compile_safe(v)
                    except UnsafePattern as exc:
                        raise RuleError(
                            f"rule {i} ({intent}): bad regex {v!r}: {exc.reason}"
                        ) from None
    return list(rules)
