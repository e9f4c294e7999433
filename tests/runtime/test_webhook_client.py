"""The lean session-webhook client against a real TCP server that answers in each way HTTP
allows (sized, chunked, to the close), keeps or drops connections, hangs or breaks."""

from __future__ import annotations

import asyncio
import json

import pytest
from dingskill.runtime.replies import ReplySender
from dingskill.runtime.webhook_client import (
    WebhookClient,
    WebhookConnectionLost,
    WebhookUnreachable,
)
from dingskill.skills.conversation import Reply

from .harness import free_port

OK = b'{"errcode":0,"errmsg":"ok"}'


def _answers(body: bytes) -> dict[str, bytes]:
    """What the server writes for each path (``hang`` and ``break`` are handled apart)."""
    n = str(len(body)).encode()
    return {
        "/sized": b"HTTP/1.1 200 OK\r\nContent-Length: " + n + b"\r\n\r\n" + body,
        "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:5], body[5:]))
        + b"0\r\n\r\n",
        "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
        "/http10": b"HTTP/1.0 200 OK\r\nContent-Length: " + n + b"\r\n\r\n" + body,
        "/busy": b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
        "/garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
        # a chunk announced larger than any answer may be, and a chunk-size line without end
        "/hugechunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % (64 * 1024 * 1024)
        + b"x" * 1024,
        "/endless": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70_000,
    }


class Server:
    """A real TCP server speaking just enough HTTP/1.1; counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []
        self.answers = _answers(OK)

    async def handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1].split("?")[0]
                size = next(
                    int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length")
                )
                body = await reader.readexactly(size)
                self.requests.append((lines[0], body))
                if path == "/hang":
                    await asyncio.sleep(30)
                if path == "/break":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")
                    await writer.drain()
                    writer.close()
                    return
                writer.write(self.answers[path])
                await writer.drain()
                if path in ("/close", "/http10", "/garbage"):
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def _run(fn):
    async def main():
        server = Server()
        port = free_port()
        srv = await asyncio.start_server(server.handle, "127.0.0.1", port)
        try:
            return await fn(server, f"http://127.0.0.1:{port}")
        finally:
            srv.close()

    return asyncio.run(main())


def test_every_answer_shape_reads_alike_and_connections_are_kept():
    async def go(server, base):
        http = WebhookClient(timeout_s=5)
        got = []
        for path in ("/sized", "/sized", "/chunked", "/close", "/http10", "/sized?session=a"):
            got.append(await http.post(base + path, b'{"msgtype":"text"}'))
        await http.close()
        return got, server.connections, server.requests

    got, connections, requests = _run(go)
    assert got == [(200, OK)] * 6
    # sized and chunked answers keep the connection; Connection: close and HTTP/1.0 do not
    assert connections == 3
    assert requests[0] == ("POST /sized HTTP/1.1", b'{"msgtype":"text"}')
    assert requests[-1][0] == "POST /sized?session=a HTTP/1.1"


def test_a_connection_idle_longer_than_idle_s_is_not_used_again():
    """Servers close idle connections after a few seconds; a request written as that close
    is on its way would be lost (and maybe delivered), so old idle connections are dropped."""

    async def go(server, base):
        http = WebhookClient(timeout_s=5, idle_s=0)  # every idle connection is too old
        got = [await http.post(base + "/sized", b"{}") for _ in range(3)]
        await http.close()
        return got, server.connections

    got, connections = _run(go)
    assert got == [(200, OK)] * 3 and connections == 3


def test_concurrent_posts_share_kept_connections():
    async def go(server, base):
        http = WebhookClient(timeout_s=5, limit_per_host=4)
        for _ in range(5):
            got = await asyncio.gather(*(http.post(base + "/sized", b"{}") for _ in range(20)))
            assert got == [(200, OK)] * 20
        await http.close()
        return server.connections

    assert _run(go) <= 4


def test_failures_say_whether_the_request_may_have_been_sent():
    async def go(server, base):
        http = WebhookClient(timeout_s=0.5)
        out = {}
        for path in ("/break", "/garbage", "/hugechunk", "/endless", "/hang"):
            try:
                await http.post(base + path, b"{}")
            except Exception as exc:  # noqa: BLE001 - the test records each kind
                out[path] = exc
        try:
            await http.post(f"http://127.0.0.1:{free_port()}/sized", b"{}")
        except Exception as exc:  # noqa: BLE001
            out["refused"] = exc
        # after each failure the client still works, on a fresh connection
        out["after"] = await http.post(base + "/sized", b"{}")
        await http.close()
        return out

    out = _run(go)
    assert isinstance(out["/break"], WebhookConnectionLost)
    assert isinstance(out["/garbage"], WebhookConnectionLost)
    assert "not HTTP" in str(out["/garbage"])
    assert "too long" in str(out["/hugechunk"])  # refused at the size line, nothing buffered
    assert "chunk-size line is too long" in str(out["/endless"])
    assert isinstance(out["/hang"], TimeoutError)
    assert isinstance(out["refused"], WebhookUnreachable)
    assert out["after"] == (200, OK)


def test_reply_sender_retries_only_what_was_not_delivered():
    async def go(server, base):
        sender = ReplySender(timeout_s=0.5, retries=2, backoff_s=0.01)
        results = {
            "ok": await sender.send(base + "/chunked", Reply(text="你好")),
            "busy": await sender.send(base + "/busy", Reply(text="a")),
            "lost": await sender.send(base + "/break", Reply(text="b")),
            "refused": await sender.send(f"http://127.0.0.1:{free_port()}/x", Reply(text="c")),
            "bad": await sender.send("ftp://example.org/x", Reply(text="d")),
        }
        await sender.close()
        return results, server.requests

    results, requests = _run(go)
    assert results["ok"].ok and results["ok"].attempts == 1
    assert json.loads(requests[0][1]) == {"msgtype": "text", "text": {"content": "你好"}}
    busy = results["busy"]
    assert not busy.ok and busy.attempts == 3 and busy.error == "webhook answered 503"
    lost = results["lost"]
    assert lost.uncertain and lost.attempts == 1 and "connection lost" in lost.error
    refused = results["refused"]
    assert not refused.uncertain and refused.attempts == 3 and "unreachable" in refused.error
    assert results["bad"].attempts == 1 and "http(s)" in results["bad"].error


def test_bad_settings_are_refused_with_the_values():
    with pytest.raises(ValueError, match="timeout_s=0"):
        WebhookClient(timeout_s=0)


def test_request_lines_are_built_from_the_url_and_nothing_can_be_smuggled_in():
    http = WebhookClient()
    key, head = http._target("http://127.0.0.1:8080/robot/sendBySession?session=a#frag")
    assert key == ("http", "127.0.0.1", 8080)
    assert head.startswith(
        b"POST /robot/sendBySession?session=a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    )
    key, head = http._target("https://OAPI.example.com/x")
    assert key == ("https", "oapi.example.com", 443)
    assert b"\r\nHost: oapi.example.com\r\n" in head
    for bad in (
        "http://h/a b",
        "http://h/a\r\nX-Injected: 1",
        "http://h/\u4f1a\u8bae",
        "ftp://h/x",
        "http://user@h/x",
        "http://h:99999/x",
        "http:///x",
        "h/x",
    ):
        with pytest.raises(ValueError):
            http._target(bad)
