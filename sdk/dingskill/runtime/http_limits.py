"""Limits of the runtime's HTTP server against hostile clients.

- :func:`read_body`: called only after the request is authenticated; streams the body with a
  size limit (413 as soon as it is exceeded, before the rest is read) and a read deadline (408
  for slow senders), and parses JSON with 400 for anything malformed.
- :class:`GuardedH11Protocol`: header and body deadlines per request, a socket closed when
  answered before its body arrived, a cap on connections per client address (slow-loris
  sockets do not stay open, and one address cannot hold every connection);
- :class:`CloseOnClientError`: ``Connection: close`` on every 4xx.
"""

from __future__ import annotations

import asyncio
import json

import h11
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "BodyError",
    "CloseOnClientError",
    "GuardedH11Protocol",
    "HEADER_TIMEOUT_S",
    "read_body",
    "read_json",
]

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
    """uvicorn's h11 protocol with deadlines and a per-address cap:

    - the headers of each request within ``header_timeout_s`` (of the connection's start or
      of the previous response), else the socket is closed;
    - the body within ``body_timeout_s`` of the headers, whether or not the application reads
      it, else the socket is closed;
    - a response sent before the client finished its body closes the socket (a 401 to a
      request still trickling its body does not leave it open);
    - at most ``max_per_client`` open connections per client address (0: no cap); one more
      is closed at once, before it is read."""

    header_timeout_s = HEADER_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S
    max_per_client = 0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = None
        self._addr = self.client[0] if self.client else ""
        counts = _client_counts(self.server_state)
        counts[self._addr] = counts.get(self._addr, 0) + 1
        if self.max_per_client and counts[self._addr] > self.max_per_client:
            self.transport.close()
            return
        self._arm(self.header_timeout_s, self._header_timeout)

    def _arm(self, delay: float, fn) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(delay, fn)

    def _header_timeout(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def _body_timeout(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self.cycle is not None:  # headers complete
            self._arm(self.body_timeout_s, self._body_timeout)

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.transport.close()  # answered before its body arrived: no more reading
            return
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # not a pipelined request
        if idle and not self.transport.is_closing():
            self._arm(self.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        addr = getattr(self, "_addr", None)
        if addr is not None:
            counts = _client_counts(self.server_state)
            left = counts.get(addr, 1) - 1
            if left > 0:
                counts[addr] = left
            else:
                counts.pop(addr, None)
            self._addr = None
        super().connection_lost(exc)


def _client_counts(server_state) -> dict[str, int]:
    counts = getattr(server_state, "_dingskill_per_client", None)
    if counts is None:
        counts = server_state._dingskill_per_client = {}
    return counts


class CloseOnClientError:
    """ASGI middleware: every 4xx response (refused auth, size, time, bad input) carries
    ``Connection: close``, so the server closes the socket once it is sent."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def guarded(message) -> None:
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, guarded)
