"""A response that calls an HTTP API: templated URL and body, secrets from the environment,
timeout, retries with exponential backoff, and the JSON fields to keep for the reply."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass

import httpx

from .templates import render

__all__ = ["HttpAction", "HttpActionError", "json_path"]

_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
_RETRY_STATUS = {429, 500, 502, 503, 504}


class HttpActionError(RuntimeError):
    """The API call failed after its retries (the reply falls back to the fallback text)."""


def _env(value: str) -> str:
    def sub(m):
        if m[1] in os.environ:
            return os.environ[m[1]]
        if m[2] is not None:
            return m[2]
        raise HttpActionError(f"environment variable {m[1]} is not set")

    return _ENV.sub(sub, value)


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


def _render_json(obj, variables):
    if isinstance(obj, str):
        return render(obj, variables)
    if isinstance(obj, dict):
        return {k: _render_json(v, variables) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_render_json(v, variables) for v in obj]
    return obj


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

    def _request(self, variables: dict) -> tuple[str, str, dict, bytes | None]:
        url = _env(render(self.url, variables))
        headers = {k: _env(v) for k, v in (self.headers or {}).items()}
        body = None
        if self.json is not None:
            body = json.dumps(_render_json(self.json, variables), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        return self.method.upper(), url, headers, body

    def _result(self, resp: httpx.Response) -> dict:
        try:
            data = resp.json() if resp.content else {}
        except ValueError as exc:
            raise HttpActionError(
                f"API answered {resp.status_code} with a body that is not JSON"
            ) from exc
        if not self.keep:
            return data if isinstance(data, dict) else {"result": data}
        return {name: json_path(data, path) for name, path in self.keep.items()}

    @staticmethod
    def _describe(exc: Exception, url: str) -> str:
        host = httpx.URL(url).host
        return f"{type(exc).__name__} calling {host}"

    def _outcome(self, resp: httpx.Response) -> dict | None:
        """The kept fields, or None when the status asks for a retry (429 / 5xx)."""
        if resp.status_code in _RETRY_STATUS:
            return None
        if resp.status_code >= 400:
            raise HttpActionError(f"API answered {resp.status_code}")
        return self._result(resp)

    async def call(self, variables: dict, client: httpx.AsyncClient | None = None) -> dict:
        """Make the call (async), retrying timeouts, connection errors and 429/5xx."""
        method, url, headers, body = self._request(variables)
        own = client is None
        client = client or httpx.AsyncClient()
        last = ""
        try:
            for attempt in range(self.retries + 1):
                try:
                    resp = await client.request(
                        method, url, headers=headers, content=body, timeout=self.timeout
                    )
                    result = self._outcome(resp)
                    if result is not None:
                        return result
                    last = f"API answered {resp.status_code}"
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    last = self._describe(exc, url)
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff * (2**attempt))
        finally:
            if own:
                await client.aclose()
        raise HttpActionError(f"{last} after {self.retries + 1} attempt(s)")

    def call_sync(self, variables: dict) -> dict:
        """Blocking variant of :meth:`call` (runs it on a private event loop)."""
        return asyncio.run(self.call(variables))
