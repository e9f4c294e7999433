"""Keep secrets out of logs, metrics, audit records and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Redactor", "MASK"]

MASK = "***"
_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|api[_-]?key|app[_-]?key|private|sign)", re.I
)


class Redactor:
    """Replaces known secret values (and values of secret-looking fields) by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def text(self, value: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(s, MASK)
        return value

    def data(self, value):
        """Redact a JSON-like structure: secret-looking keys and known secret values."""
        if isinstance(value, dict):
            return {
                k: (MASK if isinstance(k, str) and _SECRET_KEYS.search(k) and v else self.data(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
