"""Blocking HTTP for the command line and other synchronous callers (package and market
downloads, the daily report, ``dingskill doctor``, the emulator client, alerts), on the
standard library's ``urllib.request``: the runtime's one async client is aiohttp, and
nothing in the package needs a second HTTP library.

- Every HTTP status is an answer (:class:`Response`); only a request that got no answer
  (unreachable, timed out, not a valid URL) raises :class:`HttpError`, naming the URL.
- ``follow_redirects=False`` hands a redirect back as it came; ``trust_env=False`` ignores
  proxy variables.
- ``connect_to(host, port) -> address`` decides the address each connection goes to (it may
  raise to refuse the host): the connection is still made by name, so the ``Host`` header and
  the TLS certificate check use the name. Downloads use it to connect only to addresses they
  checked (no proxy then, so the check is about the server itself).
- :func:`stream` reads the body as it arrives (:func:`dingskill.download.read_capped` stops
  at a limit).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urlencode

__all__ = ["HttpError", "Response", "StreamedResponse", "get", "post", "request", "stream"]

USER_AGENT = "dingskill"


class HttpError(OSError):
    """A request that got no HTTP answer (unreachable, timed out, not a valid URL)."""


class _Refused(OSError):
    """Carries an exception raised by ``connect_to`` through urllib's error wrapping."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


@dataclass
class Response:
    """A whole answer: status, headers (case-insensitive ``get``), body."""

    status: int
    headers: Message
    content: bytes
    url: str = ""

    @property
    def text(self) -> str:
        return self.content.decode(self.headers.get_content_charset() or "utf-8", "replace")

    def json(self):
        """The body as JSON (``ValueError`` when it is not)."""
        return jsonlib.loads(self.content)

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers


@dataclass
class StreamedResponse:
    """An answer whose body is read as it arrives (:meth:`iter_bytes`)."""

    status: int
    headers: Message
    url: str = ""
    _raw: object = field(default=None, repr=False)

    def iter_bytes(self, chunk_size: int = 65536) -> Iterator[bytes]:
        while True:
            chunk = self._raw.read(chunk_size)
            if not chunk:
                return
            yield chunk

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then hands the 3xx back as an HTTPError: an answer


def _checked_connection(base: type, connect_to: Callable[[str, int], str]) -> type:
    class Checked(base):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = self._connect_checked

        def _connect_checked(self, address, timeout=None, source_address=None):
            host, port = address
            try:
                ip = connect_to(host, port)
            except Exception as exc:  # noqa: BLE001 - re-raised as it was by request()
                raise _Refused(exc) from exc
            return socket.create_connection((ip, port), timeout, source_address)

    return Checked


def _opener(follow_redirects: bool, trust_env: bool, connect_to) -> urllib.request.OpenerDirector:
    handlers: list = []
    if not trust_env or connect_to is not None:
        handlers.append(urllib.request.ProxyHandler({}))
    if not follow_redirects:
        handlers.append(_NoRedirect())
    if connect_to is not None:
        http_conn = _checked_connection(http.client.HTTPConnection, connect_to)
        https_conn = _checked_connection(http.client.HTTPSConnection, connect_to)

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(http_conn, req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(https_conn, req, context=self._context)

        handlers += [Http(), Https()]
    return urllib.request.build_opener(*handlers)


def _build(method, url, json, data, headers, params) -> urllib.request.Request:
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
    if json is not None:
        data = jsonlib.dumps(json, ensure_ascii=False).encode()
        hdrs.setdefault("Content-Type", "application/json")
    return urllib.request.Request(url, data=data, headers=hdrs, method=method.upper())


@contextmanager
def stream(
    method: str,
    url: str,
    *,
    json=None,
    data: bytes | None = None,
    headers: dict | None = None,
    params: dict | None = None,
    timeout: float = 10.0,
    follow_redirects: bool = True,
    trust_env: bool = True,
    connect_to: Callable[[str, int], str] | None = None,
) -> Iterator[StreamedResponse]:
    """``with stream("GET", url) as resp:`` the answer, its body read as it arrives.

    ``timeout`` bounds each connect and read (seconds)."""
    try:
        req = _build(method, url, json, data, headers, params)
    except ValueError as exc:
        raise HttpError(f"{method.upper()} {url[:120]}: not a valid URL ({exc})") from None
    opener = _opener(follow_redirects, trust_env, connect_to)
    try:
        raw = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:  # a 4xx/5xx or an unfollowed 3xx: an answer
        raw = exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, _Refused):
            raise reason.original from None
        if isinstance(reason, TimeoutError):
            reason = f"timed out after {timeout:g} s"
        raise HttpError(f"{method.upper()} {url[:120]}: {reason}") from None
    except _Refused as exc:
        raise exc.original from None
    except TimeoutError:
        raise HttpError(f"{method.upper()} {url[:120]}: timed out after {timeout:g} s") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise HttpError(f"{method.upper()} {url[:120]}: {type(exc).__name__}: {exc}") from None
    try:
        status = raw.status
        yield StreamedResponse(status, raw.headers, raw.geturl(), raw)
    except TimeoutError:
        raise HttpError(f"{method.upper()} {url[:120]}: timed out after {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise HttpError(f"{method.upper()} {url[:120]}: {type(exc).__name__}: {exc}") from None
    finally:
        raw.close()


def request(method: str, url: str, **kwargs) -> Response:
    """The whole answer of one request (arguments as :func:`stream`)."""
    with stream(method, url, **kwargs) as resp:
        body = b"".join(resp.iter_bytes())
        return Response(resp.status, resp.headers, body, resp.url)


def get(url: str, **kwargs) -> Response:
    """``request("GET", url, ...)``."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs) -> Response:
    """``request("POST", url, ...)``."""
    return request("POST", url, **kwargs)
