"""Regular expressions from packages, run on a linear-time engine (RE2).

Trigger patterns and regex slots come from skill packages, i.e. from strangers: Python's
backtracking ``re`` can take exponential time on patterns such as ``^(a+)+$``. RE2 matches in
time linear in the text and refuses what it cannot do in linear time (back-references,
look-around), so such patterns are refused when a manifest or model is loaded, with the
pattern and the reason named. Texts are bounded by the runtime's ``max_text_chars``.
"""

from __future__ import annotations

from functools import lru_cache

import re2

__all__ = ["UnsafePattern", "compile_safe", "compile_union", "MAX_PATTERN_CHARS"]

MAX_PATTERN_CHARS = 500
_MAX_MEM = 8 << 20  # bytes of automaton per pattern


class UnsafePattern(ValueError):
    """A pattern the linear-time engine cannot run (names the pattern and the reason)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def _options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = _MAX_MEM
    return opts


@lru_cache(maxsize=4096)
def compile_safe(pattern: str):
    """Compile ``pattern`` with RE2 (``(?i)`` and the usual syntax work); raises
    :class:`UnsafePattern` for over-long patterns and constructs RE2 refuses."""
    if not isinstance(pattern, str):
        raise UnsafePattern(f"pattern must be a string, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePattern(
            f"pattern {pattern[:40]!r}... has {len(pattern)} characters, limit {MAX_PATTERN_CHARS}",
            f"{len(pattern)} characters, limit {MAX_PATTERN_CHARS}",
        )
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        reason = f"{msg} (patterns run on RE2, linear time: no back-references or look-around)"
        raise UnsafePattern(f"pattern {pattern!r} refused: {reason}", reason) from None


def compile_union(patterns: list[str]):
    """One RE2 regex that matches wherever any of ``patterns`` (each accepted by
    :func:`compile_safe`) matches, to learn in one search whether any does; each pattern is
    its own group, so its flags stay its own. None for fewer than two patterns, or when they
    do not combine (e.g. the automaton grows too large): then try them one by one."""
    if len(patterns) < 2:
        return None
    try:
        return re2.compile("|".join(f"(?:{p})" for p in patterns), options=_options())
    except re2.error:
        return None
