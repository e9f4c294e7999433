"""Escaping for the reports the project writes (Markdown and HTML) from names and text it did
not write itself: intent names, skill ids, chat text, alert details.

:func:`md_escape` makes a value literal text in Markdown: ``<``, ``>`` and ``&`` become
entities (no raw HTML such as ``<script>`` or an autolink ``<javascript:...>``), and the
characters that start emphasis, links, images, headings, lists, tables or code get a
backslash (no ``[text](javascript:...)``: without ``[`` and ``]`` a parenthesis is text); newlines become spaces (one table cell, one line).
:func:`html_escape` is :func:`html.escape` with quotes (safe in text and attributes).

This module imports nothing of dingskill, so every layer may use it."""

from __future__ import annotations

import html
import re

__all__ = ["md_escape", "html_escape"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # emphasis, links/images, code, tables


def html_escape(value) -> str:
    """``value`` as HTML text (``& < > " '`` escaped)."""
    return html.escape(str(value), quote=True)


def md_escape(value) -> str:
    """``value`` as literal Markdown text on one line."""
    text = " ".join(str(value).replace("\r", " ").split("\n"))
    text = _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))
    if text[:1] in ("#", "+", "-", "="):  # a heading, list or setext line at the start
        text = "\\" + text
    return text
