"""Text normalisation shared by training and the runtime: the feature fold of
:mod:`dingskill.text` (NFKC, lower case, control characters as spaces, single spaces)."""

from __future__ import annotations

from ..text import fold as normalize_text

__all__ = ["normalize_text"]
