"""1,000 trickling sockets against a real `dingskill run` (webhook mode, loopback only): the
webhook, /healthz and the admin API keep answering within 1 s; the server closes each socket
at its header or body deadline or right after the 4xx / early answer it sent; one address
holds no more than its cap. Bounded (a few seconds) and self-stopping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import resource
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from dingskill.security.rbac import AccessControl
from dingskill.skills.packaging import SkillHome

from .hostile import export

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import RuntimeProcess, scaled, wait_until  # noqa: E402

APP = ("dingslowapp", "slow-app-secret")
ADDRESSES = [f"127.0.0.{i}" for i in range(10, 30)]  # 20 client addresses x 50 sockets
PER_ADDRESS = 50
DEADLINE_S = 2.0


def _signed_headers() -> dict:
    ts = str(int(time.time() * 1000))
    mac = hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    return {"timestamp": ts, "sign": base64.b64encode(mac).decode()}


# what each kind of slow client sends at once; the rest trickles a byte at a time
OPENINGS = {
    "headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # headers never finished
    "unsigned-body": b"POST /api/v1/webhook HTTP/1.1\r\nHost: x\r\ntimestamp: 1\r\nsign: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",  # 401, then close
    "admin-body": b"POST /admin/skills HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{",
    "early-answer": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n.",
    "signed-body": b"",  # signed headers, then a trickling body: closed at the body deadline
}


def _opening(kind: str) -> bytes:
    if kind != "signed-body":
        return OPENINGS[kind]
    h = _signed_headers()
    return (
        f"POST /api/v1/webhook HTTP/1.1\r\nHost: x\r\ntimestamp: {h['timestamp']}\r\n"
        f"sign: {h['sign']}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # the server and this test each hold ~1,000 sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    work = tmp_path_factory.mktemp("slow-rt")
    home = SkillHome(work / "home")
    home.install(
        export(
            work / "v1", {"intents": {"lookup": {"template": "hi"}, "hello": {"template": "hi"}}}
        )
    )
    token = AccessControl(work / "home" / "access.json").create_token("ops", "admin")
    rt = RuntimeProcess(
        work / "rt",
        work / "home",
        "http://127.0.0.1:9",
        APP,
        extra={
            "server": {
                "header_timeout_s": DEADLINE_S,
                "body_timeout_s": DEADLINE_S,
                "max_connections_per_client": PER_ADDRESS,
            },
            "channels": {"enterprise_chat": {"mode": "webhook"}},
            "limits": {"user_per_minute": 0, "conversation_per_minute": 0},
        },
    )
    try:
        rt.start()
        rt.token = token
        yield rt
    finally:
        rt.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open(port: int, source: str, opening: bytes) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(opening)
    s.setblocking(False)
    return s


def _closed(s: socket.socket) -> bool:
    """The server closed it (EOF or reset), whatever it answered first."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _answers(rt) -> dict[str, float]:
    """Seconds each endpoint takes to answer one fresh client (from 127.0.0.1)."""
    out = {}
    with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        for name, call in (
            ("healthz", lambda: c.get(f"{rt.url}/healthz")),
            (
                "webhook",
                lambda: c.post(
                    f"{rt.url}/api/v1/webhook",
                    headers=_signed_headers(),
                    json={
                        "msgId": f"slow-{time.monotonic_ns()}",
                        "conversationId": "cid-slow",
                        "senderId": "$:u1",
                        "senderStaffId": "u1",
                        "conversationType": "1",
                        "text": {"content": "hello"},
                        "msgtype": "text",
                    },
                ),
            ),
            (
                "admin",
                lambda: c.get(
                    f"{rt.url}/admin/skills", headers={"Authorization": f"Bearer {rt.token}"}
                ),
            ),
        ):
            t0 = time.perf_counter()
            r = call()
            out[name] = time.perf_counter() - t0
            assert r.status_code == 200, (name, r.status_code, r.text[:200])
    return out


def test_a_thousand_trickling_sockets_do_not_hold_the_server(runtime):
    kinds = list(OPENINGS)
    socks: dict[str, list[socket.socket]] = {k: [] for k in kinds}
    stop = threading.Event()
    try:
        # one address over its cap: the sockets past it are closed at once, unread
        capped = [_open(runtime.port, "127.0.0.99", OPENINGS["headers"]) for _ in range(60)]
        wait_until(
            lambda: sum(_closed(s) for s in capped) == 10, 1, 0.05, what="10 over the cap closed"
        )
        assert not any(_closed(s) for s in capped[:PER_ADDRESS])
        for s in capped:
            s.close()
        for a, addr in enumerate(ADDRESSES):
            for i in range(PER_ADDRESS):
                kind = kinds[(a * PER_ADDRESS + i) % len(kinds)]
                socks[kind].append(_open(runtime.port, addr, _opening(kind)))

        def trickle() -> None:  # a byte per socket every 0.3 s until told to stop
            while not stop.wait(0.3):
                for group in socks.values():
                    for s in group:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass

        threading.Thread(target=trickle, daemon=True).start()
        assert sum(len(v) for v in socks.values()) == 1000
        # answered while all 1,000 are open and trickling
        took = _answers(runtime)
        assert max(took.values()) < scaled(1.0), took
        # answered before its body arrived (401, or 200 for /healthz): closed right away
        for kind in ("unsigned-body", "admin-body", "early-answer"):
            wait_until(
                lambda k=kind: all(_closed(s) for s in socks[k]),
                DEADLINE_S,
                0.05,
                what=f"{kind} sockets closed after their answer",
            )
        # headers or a body still trickling: closed at their deadline
        for kind in ("headers", "signed-body"):
            wait_until(
                lambda k=kind: all(_closed(s) for s in socks[k]),
                DEADLINE_S + 3,
                0.1,
                what=f"{kind} sockets closed at the deadline",
            )
        took = _answers(runtime)
        assert max(took.values()) < scaled(1.0), took
    finally:
        stop.set()
        for group in socks.values():
            for s in group:
                s.close()
