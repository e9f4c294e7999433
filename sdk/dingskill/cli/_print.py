"""The one printing helper of the CLI. Index, manifest, chat and log text is a stranger's,
and a terminal obeys escape sequences in it (clear the screen, rewrite earlier lines, OSC 52: write
the clipboard, OSC 8: a link whose target differs from its text, and so on). Everything the
CLI prints goes through :func:`strip_controls` (``cli.main`` runs every command inside
:func:`safe_output`, which wraps stdout and stderr in a :class:`SafeStream`), so no command
can forget it.

Removed: ESC sequences of every kind (CSI ``ESC [ … final``, OSC ``ESC ] … BEL|ST``, DCS /
SOS / PM / APC strings up to ST, two-character escapes), the 8-bit C1 controls (U+0080 to
U+009F, among them the one-byte CSI and OSC), C0 controls except newline and tab, DEL, and
the bidirectional overrides and isolates that reorder what is shown (U+202A-U+202E,
U+2066-U+2069)."""

from __future__ import annotations

import io
import re
import sys
from contextlib import contextmanager

__all__ = ["strip_controls", "safe_line", "SafeStream", "safe_output"]

_STRING_SEQ = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"  # OSC, DCS, SOS, PM, APC (7- or 8-bit)
    r".*?(?:\x07|\x1b\\|\x9c|$)",  # ... up to BEL or ST (or the end: unterminated)
    re.DOTALL,
)
_CSI = re.compile(r"(?:\x1b\[|\x9b)[\x20-\x3f]*[\x40-\x7e]?")
_ESC = re.compile(r"\x1b[\x20-\x2f]*[\x30-\x7e]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_controls(text: str, keep_newlines: bool = True) -> str:
    """``text`` without terminal control sequences and control characters (newline and tab
    kept unless ``keep_newlines`` is false: then they become spaces)."""
    if not isinstance(text, str):
        text = str(text)
    text = _STRING_SEQ.sub("", text)
    text = _CSI.sub("", text)
    text = _ESC.sub("", text)
    if not keep_newlines:
        text = text.replace("\n", " ").replace("\t", " ")
    return _CONTROLS.sub("", text)


def safe_line(text) -> str:
    """One printable line (newlines and tabs become spaces)."""
    return strip_controls(str(text), keep_newlines=False)


class SafeStream(io.TextIOBase):
    """A text stream that strips control sequences from everything written to it."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, s: str) -> int:
        self.inner.write(strip_controls(s))
        return len(s)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def errors(self):  # type: ignore[override]
        return getattr(self.inner, "errors", "strict")

    @property
    def buffer(self):
        return self.inner.buffer

    def writable(self) -> bool:
        return True


@contextmanager
def safe_output():
    """Within: ``sys.stdout`` and ``sys.stderr`` strip terminal control sequences."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(out), SafeStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
