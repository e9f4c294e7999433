"""``WebhookClient``: a lean HTTP/1.1 JSON POST over kept-alive connections, for the one
request the runtime makes per message (the reply to the session webhook).

aiohttp's client stays the project's HTTP client for everything else (skills' HTTP actions,
the OpenAPI); for this one call its per-request machinery (request and response objects,
URL building, tracing hooks, cookie filtering, a timer per request) was about 12 % of the
runtime process's interpreter time under load, all of it on the event loop. This client
writes one pre-built request and parses the status line, the headers and a body sized by
``Content-Length`` or chunked (or read to the close), nothing more.

Errors keep the distinction the caller needs (a reply must never be sent twice):
:class:`WebhookUnreachable` -- nothing was sent (the name did not resolve, the connection
was refused): safe to retry; :class:`WebhookConnectionLost` -- the connection broke after
the request went out: it may have been delivered; ``TimeoutError`` -- no answer within
``timeout_s``: it may have been delivered. A kept-alive connection the server has closed
is noticed before use (it is dropped, a new one is opened), and one idle longer than
``idle_s`` is not used again: servers close idle connections after a few seconds (uvicorn
after 5 s, nginx after 75 s), and a request written as the server's close is on its way
would be lost, maybe delivered, and never retried."""

from __future__ import annotations

import asyncio
import ssl as _ssl
from urllib.parse import urlsplit

__all__ = ["WebhookClient", "WebhookConnectionLost", "WebhookError", "WebhookUnreachable"]

MAX_HEAD = 64 * 1024  # a status line and headers longer than this are refused
MAX_BODY = 8 * 1024 * 1024  # a webhook answer is a few dozen bytes


class WebhookError(OSError):
    """A webhook request failed (see the subclasses for whether it may have been sent)."""


class WebhookUnreachable(WebhookError):
    """The connection could not be opened: the request was not sent."""


class WebhookConnectionLost(WebhookError):
    """The connection broke, or the answer was not HTTP, after the request went out."""


class _Conn(asyncio.Protocol):
    """One kept-alive connection: at most one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future | None = None
        self._status = 0
        self._keep = True
        self._length: int | None = None  # body bytes still to come (None: to the close)
        self._chunked = False
        self._head_done = False
        self._body = bytearray()
        self.idle_since = 0.0  # loop time it went back to the pool

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.closed = True  # bytes nobody asked for: the connection is not reusable
            if self.transport is not None:
                self.transport.close()
            return
        self._buf += data
        try:
            self._parse()
        except WebhookConnectionLost as exc:
            self._fail(exc)

    def eof_received(self):
        self._end(None)
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        self._end(exc)

    def _end(self, exc) -> None:
        self.closed = True
        w = self._waiter
        if w is None or w.done():
            return
        if self._head_done and self._length is None and not self._chunked:
            self._finish()  # a body read to the close
            return
        reason = f"{type(exc).__name__}: {exc}" if exc else "the server closed the connection"
        self._fail(WebhookConnectionLost(f"connection lost before the answer ended ({reason})"))

    # -- one request -----------------------------------------------------------------------
    def request(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        self._waiter = loop.create_future()
        self._buf.clear()
        self._body = bytearray()
        self._status, self._keep, self._length = 0, True, None
        self._chunked = self._head_done = False
        self.transport.write(data)
        return self._waiter

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _finish(self) -> None:
        if not self._keep:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._status, bytes(self._body)))

    def _parse(self) -> None:
        buf = self._buf
        if not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise WebhookConnectionLost("the answer's headers are too long")
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise WebhookConnectionLost(f"the answer is not HTTP: {lines[0][:60]!r}")
            self._status = int(parts[1])
            self._keep = parts[0] == b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip()
                if name == b"content-length":
                    if not value.isdigit() or int(value) > MAX_BODY:
                        raise WebhookConnectionLost(f"bad Content-Length {value[:20]!r}")
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self._chunked = True
                elif name == b"connection":
                    v = value.lower()
                    self._keep = b"close" not in v and (self._keep or b"keep-alive" in v)
            if self._status in (204, 304) or 100 <= self._status < 200:
                self._length = 0
            if self._chunked:
                self._length = None
            self._head_done = True
        if self._chunked:
            self._parse_chunks()
        elif self._length is None:
            self._body += buf
            buf.clear()
            if len(self._body) > MAX_BODY:
                raise WebhookConnectionLost("the answer is too long")
        else:
            take = min(self._length, len(buf))
            self._body += buf[:take]
            del buf[:take]
            self._length -= take
            if self._length == 0:
                if buf:  # more than the answer: the connection is out of step
                    self._keep = False
                self._finish()

    def _parse_chunks(self) -> None:
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > MAX_HEAD:  # a chunk-size line never ends
                    raise WebhookConnectionLost("the answer's chunk-size line is too long")
                return
            size_s = bytes(buf[:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise WebhookConnectionLost(f"bad chunk size {size_s[:20]!r}") from None
            if size < 0 or len(self._body) + size > MAX_BODY:  # refused before it is buffered
                raise WebhookConnectionLost("the answer is too long")
            if size == 0:  # the last chunk, then trailers (if any) and an empty line
                if buf.startswith(b"\r\n", eol + 2) or buf.find(b"\r\n\r\n", eol + 2) >= 0:
                    self._finish()
                elif len(buf) > eol + 2 + MAX_HEAD:
                    raise WebhookConnectionLost("the answer's trailers are too long")
                return
            if len(buf) < eol + 2 + size + 2:
                return
            self._body += buf[eol + 2 : eol + 2 + size]
            if len(self._body) > MAX_BODY:
                raise WebhookConnectionLost("the answer is too long")
            del buf[: eol + 2 + size + 2]


class WebhookClient:
    """POSTs ``body`` (bytes, JSON) to URLs over connections kept per (scheme, host, port),
    at most ``limit_per_host`` requests at once to one host, up to ``idle_keep`` idle
    connections per host kept at most ``idle_s`` seconds. ``timeout_s`` bounds each
    request (connecting included)."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        limit_per_host: int = 200,
        idle_keep: int = 64,
        idle_s: float = 4.0,
    ) -> None:
        if timeout_s <= 0 or limit_per_host < 1 or idle_keep < 0 or idle_s < 0:
            raise ValueError(
                "WebhookClient: timeout_s must be > 0, limit_per_host >= 1, idle_keep >= 0, "
                f"idle_s >= 0; got timeout_s={timeout_s}, limit_per_host={limit_per_host}, "
                f"idle_keep={idle_keep}, idle_s={idle_s}"
            )
        self.idle_s = float(idle_s)
        self.timeout_s = float(timeout_s)
        self.limit_per_host = int(limit_per_host)
        self.idle_keep = int(idle_keep)
        self._idle: dict[tuple, list[_Conn]] = {}
        self._limits: dict[tuple, asyncio.Semaphore] = {}
        self._origins: dict[str, tuple] = {}  # scheme://host[:port] -> (key, head tail)
        self._ssl: _ssl.SSLContext | None = None
        self.connections_opened = 0
        self.closed = False

    def _target(self, url: str) -> tuple:
        """``(key, request head up to the Content-Length value)`` of ``url``. The origin
        (scheme, host, port) is parsed once and kept; the path is checked to be printable
        ASCII without spaces (nothing can be smuggled into the request line)."""
        mark = url.find("://")
        slash = url.find("/", mark + 3) if mark > 0 else -1
        origin = url[:slash] if slash > 0 else url
        hit = self._origins.get(origin)
        if hit is None:
            if slash < 0 or any(c in origin for c in "?#@"):
                origin, hit = "", self._origin(url)  # not http(s)://host[:port]/...: refused
            else:
                hit = self._origin(origin)
                if len(self._origins) > 256:
                    self._origins.clear()
                self._origins[origin] = hit
        key, tail = hit
        path = url[slash:].partition("#")[0] if slash > 0 else "/"
        if not (path.isascii() and path.isprintable()) or " " in path:
            raise ValueError(f"webhook URL path must be printable ASCII: {url[:80]!r}")
        return key, b"".join((b"POST ", path.encode(), tail))

    @staticmethod
    def _origin(origin: str) -> tuple:
        parts = urlsplit(origin)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise ValueError(f"webhook URL must be http(s)://host/...: {origin[:80]!r}")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError(f"webhook URL must be http(s)://host/...: {origin[:80]!r}")
        host = parts.hostname
        if not (host.isascii() and host.isprintable()) or " " in host:
            raise ValueError(f"webhook URL host must be printable ASCII: {origin[:80]!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        default = port == (443 if scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default else f":{port}")
        tail = (
            f" HTTP/1.1\r\nHost: {host_header}\r\n"
            "Content-Type: application/json\r\nAccept: */*\r\nUser-Agent: dingskill\r\n"
            "Content-Length: "
        ).encode()
        return (scheme, host, port), tail

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        """``(status, body)`` of the answer to a POST of ``body`` to ``url``."""
        if self.closed:
            raise RuntimeError("WebhookClient is closed")
        key, head = self._target(url)
        data = b"".join((head, str(len(body)).encode(), b"\r\n\r\n", body))
        sem = self._limits.get(key)
        if sem is None:
            sem = self._limits[key] = asyncio.Semaphore(self.limit_per_host)
        loop = asyncio.get_running_loop()
        async with sem, asyncio.timeout(self.timeout_s):
            conn = self._pooled(key, loop.time())
            if conn is None:
                conn = await self._connect(key, loop)
            try:
                status, answer = await conn.request(data, loop)
            except BaseException:  # timed out, cancelled, lost: never reused
                conn.closed = True
                conn.transport.close()
                raise
            if not conn.closed:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.idle_keep:
                    conn.idle_since = loop.time()
                    idle.append(conn)
                else:
                    conn.transport.close()
            return status, answer

    def _pooled(self, key: tuple, now: float) -> _Conn | None:
        """The most recently used idle connection still open and idle under ``idle_s``."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_s:
                conn.transport.close()
                continue
            return conn
        return None

    async def _connect(self, key: tuple, loop: asyncio.AbstractEventLoop) -> _Conn:
        scheme, host, port = key
        ssl = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl.create_default_context()
            ssl = self._ssl
        try:
            _, conn = await loop.create_connection(
                _Conn, host, port, ssl=ssl, server_hostname=host if ssl else None
            )
        except (OSError, _ssl.SSLError) as exc:
            raise WebhookUnreachable(
                f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})"
            ) from exc
        self.connections_opened += 1
        return conn

    async def close(self) -> None:
        """Close the kept connections; later :meth:`post` calls are refused."""
        self.closed = True
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
