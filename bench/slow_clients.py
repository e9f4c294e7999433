"""How the runtime's HTTP server answers while N sockets trickle (loopback only).

Starts `dingskill run` in webhook mode (an empty skill home), opens N sockets from 20 loopback
addresses that send their headers or bodies a byte at a time, and times /healthz, a signed
webhook message and the admin API (GET /admin/skills with an admin token) from a fresh
connection each, while the sockets are held. Bounded: it stops after one pass.

    python bench/slow_clients.py --sockets 1000 --json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

APP = ("dingbenchapp", "bench-app-secret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signed() -> dict:
    ts = str(int(time.time() * 1000))
    mac = hmac.new(APP[1].encode(), f"{ts}\n{APP[1]}".encode(), hashlib.sha256).digest()
    return {"timestamp": ts, "sign": base64.b64encode(mac).decode()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20, help="timed requests per endpoint")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sockets)), hard))
    from dingskill.security.rbac import AccessControl

    with tempfile.TemporaryDirectory() as d:
        work, port = Path(d), _free_port()
        token = AccessControl(work / "home" / "access.json").create_token("bench", "admin")
        per = max(1, -(-args.sockets // 20))
        cfg = {
            "server": {
                "port": port,
                "header_timeout_s": 30,
                "body_timeout_s": 30,
                "max_connections_per_client": per,
            },
            "storage": {"type": "memory"},
            "channels": {"enterprise_chat": {"mode": "webhook", "endpoint": "http://127.0.0.1:9"}},
            "skills": {"home": str(work / "home")},
            "audit": {"path": str(work / "audit" / "m.jsonl")},
            "limits": {"user_per_minute": 0, "conversation_per_minute": 0},
            "logging": {"level": "ERROR"},
        }
        (work / "c.json").write_text(json.dumps(cfg))
        env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(work / "c.json")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url, socks, stop = f"http://127.0.0.1:{port}", [], threading.Event()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the runtime did not start")
                time.sleep(0.1)
            for i in range(args.sockets):
                s = socket.socket()
                s.bind((f"127.0.0.{10 + i // per}", 0))
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                s.setblocking(False)
                socks.append(s)

            def trickle() -> None:
                while not stop.wait(0.3):
                    for s in socks:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass

            threading.Thread(target=trickle, daemon=True).start()
            took: dict[str, list[float]] = {"healthz": [], "webhook": [], "admin": []}
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(timeout=10, limits=limits) as c:
                for n in range(args.rounds):
                    for name, call in (
                        ("healthz", lambda: c.get(f"{url}/healthz")),
                        (
                            "webhook",
                            lambda n=n: c.post(
                                f"{url}/api/v1/webhook",
                                headers=_signed(),
                                json={
                                    "msgId": f"b-{n}-{time.monotonic_ns()}",
                                    "conversationId": "cid-b",
                                    "senderId": "$:u",
                                    "senderStaffId": "u",
                                    "conversationType": "1",
                                    "text": {"content": "hello"},
                                    "msgtype": "text",
                                },
                            ),
                        ),
                        (
                            "admin",
                            lambda: c.get(
                                f"{url}/admin/skills",
                                headers={"Authorization": f"Bearer {token}"},
                            ),
                        ),
                    ):
                        t0 = time.perf_counter()
                        r = call()
                        took[name].append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, (name, r.status_code)
        finally:
            stop.set()
            for s in socks:
                s.close()
            proc.terminate()
            proc.wait(30)
    out = {
        "sockets": args.sockets,
        **{f"{k}_p50_ms": round(statistics.median(v), 2) for k, v in took.items()},
        **{f"{k}_max_ms": round(max(v), 2) for k, v in took.items()},
    }
    print(json.dumps(out) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
