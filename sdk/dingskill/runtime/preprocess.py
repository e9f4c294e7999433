"""Preprocessing of incoming text: the size limit, then the message normal form of
:mod:`dingskill.text` (@mentions, control and invalid characters, full-width forms; the words
themselves are never rewritten)."""

from __future__ import annotations

from ..text import clean_message

__all__ = ["preprocess", "PreprocessError"]


class PreprocessError(ValueError):
    """Text that cannot be processed (over the size limit)."""


def preprocess(text: str, max_chars: int = 4000, at_names: list[str] | None = None) -> str:
    """Refuse text over ``max_chars`` (:class:`PreprocessError`), else
    :func:`dingskill.text.clean_message`."""
    if len(text) > max_chars:
        raise PreprocessError(f"text has {len(text)} characters, limit {max_chars}")
    return clean_message(text, at_names)
