"""Keep secrets out of logs, metrics, audit records and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Redactor", "MASK"]

MASK = "***"
_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|api[_-]?key|app[_-]?key|private|sign)", re.I
)
_SCALARS = frozenset({int, float, bool, type(None)})  # exact types: returned as they are
_KEY_CACHE_MAX = 4096


class Redactor:
    """Replaces known secret values (and values of secret-looking fields) by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()  # longest first, as they are replaced
        # whether a field name looks secret, per name seen (record fields are few and
        # repeat on every message: one regex search per name, not per record)
        self._secret_key: dict[str, bool] = {}
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)
            self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def text(self, value: str) -> str:
        for s in self._ordered:
            value = value.replace(s, MASK)
        return value

    def _is_secret_key(self, k: str) -> bool:
        known = self._secret_key.get(k)
        if known is None:
            known = _SECRET_KEYS.search(k) is not None
            if len(self._secret_key) < _KEY_CACHE_MAX:
                self._secret_key[k] = known
        return known

    def data(self, value):
        """Redact a JSON-like structure: secret-looking keys and known secret values."""
        t = type(value)
        if t is str:
            return self.text(value) if self._ordered else value
        if t in _SCALARS:
            return value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                tv = type(v)
                if isinstance(k, str) and self._is_secret_key(k) and v:
                    out[k] = MASK
                elif tv is str:
                    out[k] = self.text(v) if self._ordered else v
                elif tv in _SCALARS:
                    out[k] = v
                else:
                    out[k] = self.data(v)
            return out
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
