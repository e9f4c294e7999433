"""Text normalisation shared by training and the runtime.

``normalize_text`` applies NFKC (full-width letters, digits and punctuation become their
half-width forms), lower-cases, turns control / format characters into spaces and collapses
runs of white space.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text"]

_SPACE_RE = re.compile(r"\s+")
# C0/C1 controls, zero-width and bidi format characters, BOM, line/paragraph separators
_CONTROL_RE = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)


def normalize_text(text: str) -> str:
    """Return the normalised form of ``text`` (NFKC, lower case, no control characters)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL_RE.sub(" ", text)
    text = text.lower()
    return _SPACE_RE.sub(" ", text).strip()
