"""Limits of the runtime's HTTP server against hostile clients.

- :func:`read_body`: called only after the request is authenticated; streams the body with a
  size limit (413 as soon as it is exceeded, before the rest is read) and a read deadline (408
  for slow senders), and parses JSON with 400 for anything malformed.
- :class:`GuardedH11Protocol`: closes connections that have not completed their request
  headers within ``header_timeout_s`` (slow-loris sockets do not stay open forever).
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BodyError", "read_body", "read_json", "GuardedH11Protocol", "HEADER_TIMEOUT_S"]

MAX_BODY = 2 * 2**20
BODY_TIMEOUT_S = 10.0
HEADER_TIMEOUT_S = 10.0


class BodyError(Exception):
    """A request body refused: ``status`` (400, 408, 411, 413) and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason

    def response(self, key: str = "error") -> JSONResponse:
        body = (
            {"errcode": self.status, "errmsg": self.reason}
            if key == "errmsg"
            else {"error": self.reason}
        )
        return JSONResponse(body, status_code=self.status)


async def read_body(
    request: Request, limit: int = MAX_BODY, timeout_s: float = BODY_TIMEOUT_S
) -> bytes:
    """The body, refused over ``limit`` bytes (declared or actual) or slower than ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BodyError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    buf = bytearray()

    async def pull() -> None:
        async for chunk in request.stream():
            buf.extend(chunk)
            if len(buf) > limit:
                raise BodyError(413, f"body is over the limit of {limit} bytes")

    try:
        await asyncio.wait_for(pull(), timeout_s)
    except asyncio.TimeoutError:
        raise BodyError(408, f"body not received within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise BodyError(400, "client disconnected while sending the body") from None
    return bytes(buf)


async def read_json(request: Request, limit: int = MAX_BODY, want=dict):
    """The body parsed as JSON of type ``want``; :class:`BodyError` 400 otherwise."""
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, f"body is not valid JSON ({exc})") from None
    if want is not None and not isinstance(data, want):
        raise BodyError(400, f"body must be a JSON {want.__name__}, got {type(data).__name__}")
    return data


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the first request's headers."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)
