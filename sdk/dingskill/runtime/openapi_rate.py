"""Keeping the OpenAPI call rate under the platform's per-app per-API limit.

The platform allows each app 20 calls a second to each API and answers
``403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`` past it (its "how to handle API
throttling" page, which recommends a client-side rate limiter and waiting before retrying).
:class:`ApiPacer` holds one token bucket per API path, filled at 90 % of the configured rate
with a burst of a tenth of it, so no one-second window carries more than the limit;
:func:`qps_backoff` is the wait before retrying a call the platform throttled all the same
(several replicas share the app's limit)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

__all__ = ["QPS_CODES", "ApiPacer", "TokenBucket", "qps_backoff"]

# the per-app per-API limit, and the platform-wide one of a busy API
QPS_CODES = (
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
    "Forbidden.AccessDenied.QpsLimitForApi",
)


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; :meth:`take` waits for one."""

    rate: float
    burst: float
    tokens: float = field(default=0.0)
    stamp: float = field(default_factory=time.monotonic)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    async def take(self) -> float:
        """Wait until a token is free and take it; returns the seconds waited."""
        waited = 0.0
        async with self._lock:  # first come, first served
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return waited
                pause = (1.0 - self.tokens) / self.rate
                waited += pause
                await asyncio.sleep(pause)


class ApiPacer:
    """One :class:`TokenBucket` per API path; ``qps`` 0 switches pacing off."""

    def __init__(self, qps: float = 20.0) -> None:
        if qps < 0:
            raise ValueError(f"openapi_qps must be >= 0 (0: no pacing), not {qps}")
        self.qps = float(qps)
        self._buckets: dict[str, TokenBucket] = {}
        self.waited_s = 0.0  # total time calls waited for their turn

    async def wait(self, path: str) -> None:
        if self.qps <= 0:
            return
        bucket = self._buckets.get(path)
        if bucket is None:
            bucket = self._buckets[path] = TokenBucket(
                rate=self.qps * 0.9, burst=max(1.0, self.qps * 0.1)
            )
        self.waited_s += await bucket.take()


def qps_backoff(attempt: int, base_s: float = 0.25, cap_s: float = 1.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...) of a throttled call: exponential,
    capped at the limit's one-second window, with full jitter so throttled callers spread."""
    return random.uniform(0.5, 1.0) * min(cap_s, base_s * 2 ** (attempt - 1))
