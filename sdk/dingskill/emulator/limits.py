"""The OpenAPI's per-app per-API call limit, and the token store.

QPS: the platform's page on API throttling ("如何处理钉钉服务端API限流", section
"接口的应用维度QPS限流") says each app may call each API at most 20 times in the current
second; past that the new-style API answers ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``
(the old style 90018), and the remedy it gives is to wait and retry. The counter is keyed on
the wall-clock second ("缓存的key是当前的秒级时间戳"), so a client that keeps any one-second
window under the limit is never refused.

Tokens: ``/v1.0/oauth2/accessToken`` (and ``/gettoken``) answer the same token again while it
is valid, its lifetime renewed (the platform's access-token pages: a repeated request within the validity returns the same
token and renews it); a secret reset revokes it and calls with it answer 401.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

__all__ = ["QPS_CODE", "TOKEN_TTL_S", "QpsLimiter", "Tokens"]

QPS_CODE = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
TOKEN_TTL_S = 7200


@dataclass
class QpsLimiter:
    """Calls per (app, API) in the current wall-clock second; ``limit`` 0 switches it off."""

    limit: int = 20
    _counts: dict = field(default_factory=dict)
    refused: int = 0

    def allow(self, app: str, api: str, now: float | None = None) -> bool:
        if self.limit <= 0:
            return True
        second = int(time.time() if now is None else now)
        key = (app, api)
        sec, n = self._counts.get(key, (second, 0))
        if sec != second:
            sec, n = second, 0
        if n >= self.limit:
            self.refused += 1
            return False
        self._counts[key] = (sec, n + 1)
        return True


@dataclass
class Tokens:
    """Access tokens: one per app at a time, reused and renewed while valid."""

    ttl_s: float = TOKEN_TTL_S
    by_token: dict = field(default_factory=dict)  # token -> (app, expires epoch s)
    by_app: dict = field(default_factory=dict)  # app -> token
    issued: int = 0
    reused: int = 0
    revoked: int = 0

    def get(self, app: str) -> tuple[str, int]:
        """(token, seconds it is valid): the app's current token renewed, or a new one."""
        now = time.time()
        token = self.by_app.get(app)
        if token is not None and self.by_token.get(token, ("", 0))[1] > now:
            self.reused += 1
        else:
            token = secrets.token_hex(16)
            self.by_app[app] = token
            self.issued += 1
        self.by_token[token] = (app, now + self.ttl_s)
        return token, int(self.ttl_s)

    def app_of(self, token: str) -> str | None:
        entry = self.by_token.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def revoke(self, app: str | None = None) -> int:
        """Revoke the tokens of ``app`` (all apps when None); returns how many."""
        gone = [t for t, (a, _) in self.by_token.items() if app in (None, a)]
        for t in gone:
            del self.by_token[t]
        for a in [a for a in self.by_app if app in (None, a)]:
            del self.by_app[a]
        self.revoked += len(gone)
        return len(gone)
