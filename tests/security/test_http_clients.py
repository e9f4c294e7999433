"""One HTTP client library in the package: aiohttp for async calls, the standard library
behind ``dingskill.http_sync`` for blocking ones (httpx is a test-only dependency); the
blocking helper connects only where ``connect_to`` says, by name, and hands back redirects
and error statuses as answers."""

from __future__ import annotations

import ast
from pathlib import Path

import dingskill
import pytest
from dingskill import http_sync
from dingskill.download import read_capped

from .hostile import Recorder

PACKAGE = Path(dingskill.__file__).parent


def test_the_package_imports_no_httpx():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "httpx" or n.startswith("httpx.") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == [], f"httpx imported by the package (use aiohttp or http_sync): {offenders}"


@pytest.fixture
def server():
    with Recorder() as s:
        yield s


def test_blocking_requests_connect_where_told_by_name(server):
    port = server.server_address[1]
    asked = []

    def connect_to(host: str, port: int) -> str:
        asked.append((host, port))
        return "127.0.0.1"

    r = http_sync.get(f"http://pinned.invalid:{port}/x?q=1", connect_to=connect_to, timeout=10)
    assert r.status == 200 and r.json()["path"] == "/x?q=1"
    assert asked == [("pinned.invalid", port)]
    assert server.requests[-1]["headers"]["Host"] == f"pinned.invalid:{port}"

    def refuse(host: str, port: int) -> str:
        raise PermissionError(f"{host} refused here")

    before = len(server.requests)
    with pytest.raises(PermissionError, match="pinned.invalid refused here"):
        http_sync.get(f"http://pinned.invalid:{port}/y", connect_to=refuse)
    assert len(server.requests) == before  # nothing left the process


def test_redirects_statuses_errors_and_caps(server):
    target = f"{server.url}/redirect?to={server.url}/landed"
    r = http_sync.get(target, follow_redirects=False)
    assert r.status == 302 and r.is_redirect and r.headers["location"].endswith("/landed")
    assert http_sync.get(target).json()["path"] == "/landed"
    posted = http_sync.post(server.url + "/p", json={"文本": "你好"})
    assert posted.status == 200 and server.requests[-1]["body"] == '{"文本": "你好"}'.encode()
    with http_sync.stream("GET", server.url + "/ok") as resp:
        with pytest.raises(ValueError, match="declared 27, over 10"):
            read_capped(resp, 10, lambda size: ValueError(f"declared {size}, over 10"))
    with http_sync.stream("GET", server.url + "/ok") as resp:
        assert read_capped(resp, 1000, ValueError) == b'{"ok": true, "path": "/ok"}'
    with pytest.raises(http_sync.HttpError, match=r"GET http://127.0.0.1:9/: .*refused"):
        http_sync.get("http://127.0.0.1:9/", timeout=5)
    with pytest.raises(http_sync.HttpError, match="not a valid URL"):
        http_sync.get("nota url")
