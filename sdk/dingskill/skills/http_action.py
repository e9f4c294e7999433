"""A response that calls an HTTP API: templated URL and body, operator-granted secrets,
timeout, retries with exponential backoff, and the JSON fields to keep for the reply.

Safety (see :mod:`dingskill.skills.outbound`):

- ``${NAME}`` / ``${NAME:-default}`` is read only from the manifest's own text (URL and header
  values), before any rendering, and only for names the operator granted to the skill
  (``skills.secrets`` in the runtime config); a name not granted takes its default or is
  refused. Text produced by a template (a user's message, an API's answer) is never expanded.
- Values inserted by ``{{ ... }}`` in the URL are percent-encoded as one path segment or query
  value; header values may not contain line breaks.
- The host must be declared and approved; every resolved address must be public unless the
  operator allows it; the connection goes only to checked addresses (the aiohttp session's
  resolver checks them, :mod:`dingskill.skills.outbound_session`) while TLS still verifies
  the name; redirects are followed by hand and re-checked; the response body (after
  decompression) is limited in size.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from .errors import TemplateError
from .outbound import OutboundPolicy, OutboundRefused, resolve_checked
from .outbound_session import close_outbound_sessions, outbound_session
from .templates import render, render_tree

__all__ = ["HttpAction", "HttpActionError", "json_path", "secret_names"]

SECRET_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
_RETRY_STATUS = {429, 500, 502, 503, 504}
_REDIRECT_STATUS = {301, 302, 303, 307, 308}


# characters sent as they are: unreserved, sub-delims, ":@/?", and "%" of an escape
_KEEP = "!$&'()*+,;=:@/?~%"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _requote(text: str) -> str:
    """``text`` with its escapes kept and every character a URL may not hold escaped."""
    return quote(_STRAY_PERCENT.sub("%25", text), safe=_KEEP)


def _host(url: str) -> str:
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or "?"
    except ValueError:
        return "?"


class HttpActionError(RuntimeError):
    """The API call failed or was refused (the reply falls back to the fallback text)."""


def secret_names(text: str) -> list[str]:
    """The ``${NAME}`` references in a manifest string."""
    return [m[1] for m in SECRET_REF.finditer(text or "")]


def _expand(source: str, variables: dict, policy: OutboundPolicy, mode: str) -> str:
    """Render the template chunks of ``source`` and insert granted secrets between them."""
    out, pos = [], 0
    for m in SECRET_REF.finditer(source):
        out.append(render(source[pos : m.start()], variables, mode))
        name, default = m[1], m[2]
        if name in policy.secrets:
            out.append(policy.secrets[name])
        elif default is not None:
            out.append(default)
        else:
            raise HttpActionError(
                f"secret {name} is not granted to skill {policy.skill_id or '?'} "
                f"(runtime config skills.secrets) or not set in the environment"
            )
        pos = m.end()
    out.append(render(source[pos:], variables, mode))
    return "".join(out)


def json_path(data, path: str):
    """``"data.tickets[0].id"`` -> the value, or None when absent."""
    cur = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(cur, list) or idx >= len(cur):
                return None
            cur = cur[idx]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return None
            cur = cur[part]
    return cur


class _Decoder:
    """Decompress a body chunk by chunk without ever producing more than ``limit`` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        enc = encoding.strip().lower()
        if enc in ("", "identity"):
            self._z = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise HttpActionError(f"API answered with unsupported Content-Encoding {encoding!r}")
        self.limit, self.size, self.parts = limit, 0, []

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise HttpActionError(
                f"API response larger than the limit of {self.limit} bytes (after decompression)"
            )
        self.parts.append(data)

    def feed(self, raw: bytes) -> None:
        if self._z is None:
            self._add(raw)
            return
        data = raw
        while data:
            try:
                out = self._z.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise HttpActionError(f"API response does not decompress ({exc})") from None
            self._add(out)
            data = self._z.unconsumed_tail

    def body(self) -> bytes:
        return b"".join(self.parts)


@dataclass
class HttpAction:
    url: str
    method: str = "GET"
    headers: dict | None = None
    json: object = None
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.2
    keep: dict | None = None

    @classmethod
    def from_spec(cls, spec: dict) -> HttpAction:
        return cls(**{k: v for k, v in spec.items() if k in cls.__dataclass_fields__})

    def _request(
        self, variables: dict, policy: OutboundPolicy
    ) -> tuple[str, str, dict, bytes | None]:
        try:
            url = _expand(self.url, variables, policy, "url")
            headers = {}
            for k, v in (self.headers or {}).items():
                value = _expand(v, variables, policy, "text")
                if "\r" in value or "\n" in value or "\x00" in value:
                    raise HttpActionError(f"header {k}: value contains a line break (refused)")
                headers[k] = value
            body = None
            if self.json is not None:
                body = json.dumps(render_tree(self.json, variables), ensure_ascii=False).encode()
                headers.setdefault("Content-Type", "application/json")
        except TemplateError as exc:
            raise HttpActionError(f"request template: {exc}") from exc
        return self.method.upper(), url, headers, body

    def _result(self, status: int, content: bytes) -> dict:
        try:
            data = json.loads(content) if content else {}
        except ValueError as exc:
            raise HttpActionError(f"API answered {status} with a body that is not JSON") from exc
        if not self.keep:
            return data if isinstance(data, dict) else {"result": data}
        return {name: json_path(data, path) for name, path in self.keep.items()}

    @staticmethod
    def _target(url: str, policy: OutboundPolicy) -> URL:
        """The request URL of ``url`` (sent as written: escapes kept, stray characters
        escaped) after the scheme, host and, for a literal address, address checks."""
        try:
            parsed = URL(url)
            split = urlsplit(url)
            port = split.port
        except ValueError as exc:
            raise HttpActionError(f"URL {url[:80]!r} is not valid ({exc})") from None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise HttpActionError(f"URL {url[:80]!r}: only http(s) URLs with a host are allowed")
        if split.username is not None or split.password is not None:
            raise HttpActionError(f"URL {url[:80]!r}: credentials in the URL are refused")
        host = parsed.raw_host
        try:
            policy.check_host(parsed.host or host)
            try:
                ipaddress.ip_address(host)
            except ValueError:
                pass  # a name: resolved and checked by the session's CheckedResolver
            else:  # a literal address never reaches a resolver: check it here
                resolve_checked(host, port or 0, policy)
        except OutboundRefused as exc:
            raise HttpActionError(f"refused: {exc}") from None
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        target = f"{parsed.scheme}://{netloc}{_requote(split.path) or '/'}"
        if split.query:
            target += "?" + _requote(split.query)
        return URL(target, encoded=True)

    async def _send(self, session, method, url, headers, body, policy) -> tuple[int, bytes]:
        """One attempt: check the host, connect through the checking resolver, follow
        redirects by hand (each hop checked again)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        for _hop in range(policy.max_redirects + 1):
            target = self._target(url, policy)
            hdrs = {**headers, "Accept-Encoding": "gzip, deflate"}
            try:
                async with session.request(
                    method,
                    target,
                    headers=hdrs,
                    data=body,
                    allow_redirects=False,
                    timeout=timeout,
                ) as resp:
                    location = resp.headers.get("location")
                    if resp.status in _REDIRECT_STATUS and location is not None:
                        url = str(target.join(URL(_requote(location), encoded=True)))
                        if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                            method, body = "GET", None
                        continue
                    declared = resp.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > policy.max_response_bytes * 64:
                        raise HttpActionError(
                            f"API response declares {declared} bytes, "
                            f"limit {policy.max_response_bytes}"
                        )
                    dec = _Decoder(
                        resp.headers.get("content-encoding", ""), policy.max_response_bytes
                    )
                    async for raw in resp.content.iter_any():
                        dec.feed(raw)
                    return resp.status, dec.body()
            except aiohttp.ClientConnectorError as exc:
                refused = getattr(exc, "os_error", None)
                if isinstance(refused, OutboundRefused):  # from the CheckedResolver
                    raise HttpActionError(f"refused: {refused}") from None
                raise
        raise HttpActionError(f"more than {policy.max_redirects} redirects")

    async def call(self, variables: dict, policy: OutboundPolicy | None = None) -> dict:
        """Make the call (async), retrying timeouts, connection errors and 429/5xx.

        ``policy`` None allows nothing: no host, no secret. Requests go out through the
        running loop's shared session of ``policy``
        (:mod:`dingskill.skills.outbound_session`)."""
        policy = policy or OutboundPolicy()
        # templates render in the sandbox workers: wait for them off the event loop
        method, url, headers, body = await asyncio.to_thread(self._request, variables, policy)
        last = ""
        async with outbound_session(policy) as session:
            for attempt in range(self.retries + 1):
                try:
                    status, content = await self._send(session, method, url, headers, body, policy)
                    if status not in _RETRY_STATUS:
                        if status >= 400:
                            raise HttpActionError(f"API answered {status}")
                        return self._result(status, content)
                    last = f"API answered {status}"
                except asyncio.TimeoutError:
                    last = f"no answer from {_host(url)} within {self.timeout:g} s (timeout)"
                except aiohttp.ClientError as exc:
                    last = f"connection to {_host(url)} failed ({type(exc).__name__}: {exc})"
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff * (2**attempt))
        raise HttpActionError(f"{last} after {self.retries + 1} attempt(s)")

    def call_sync(self, variables: dict, policy: OutboundPolicy | None = None) -> dict:
        """Blocking variant of :meth:`call` (runs it on a private event loop)."""

        async def once() -> dict:
            try:
                return await self.call(variables, policy=policy)
            finally:
                await close_outbound_sessions()

        return asyncio.run(once())
