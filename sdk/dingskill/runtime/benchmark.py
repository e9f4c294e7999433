"""``dingskill bench runtime``: throughput and end-to-end latency of the Stream runtime.

Starts the local emulator (in this process) and ``dingskill run`` process(es) with the
example skills installed in a temporary home (the real dingtalk-stream SDK, SQLite for one
replica, a real redis-server for several), then

1. sends ``messages`` messages from ``users`` users keeping ``window`` in flight, to find the
   sustained rate (messages answered per second);
2. offers ``rate`` messages per second for ``duration`` seconds and measures end-to-end
   latency: from the emulator pushing the frame to it receiving the reply.

Rate limits are switched off for the run (they would throttle the synthetic users)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["run_benchmark"]

APP = ("dingbenchapp", "bench-app-secret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(root: Path) -> list[str]:
    import csv

    out = []
    for name in ("office-zh", "smalltalk-en"):
        with open(root / "datasets" / name / "test.csv", encoding="utf-8") as fh:
            out += [row["text"] for row in csv.DictReader(fh)]
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_benchmark(
    replicas: int = 1,
    messages: int = 10_000,
    users: int = 200,
    rate: float = 200.0,
    duration: float = 10.0,
    progress: bool = True,
    window: int = 200,
    project=None,
) -> dict:
    """``project``: the folder holding the example skills and datasets (default:
    :func:`dingskill.project.find_project`)."""
    from ..emulator import Emulator
    from ..project import find_project
    from ..skills import Skill
    from ..skills.packaging import SkillHome

    root = find_project(project)
    work = Path(tempfile.mkdtemp(prefix="dingskill-bench-"))
    procs: list[subprocess.Popen] = []
    redis_proc = None
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=30.0)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    try:
        home = SkillHome(work / "home")
        for name in ("hr-assistant", "faq-en"):
            home.install(Skill.load(root / "skills" / name).export(work / "dist"))
        url = emu.start()
        storage: dict = {"type": "sqlite", "path": str(work / "runtime.db")}
        if replicas > 1:
            port = _free_port()
            redis_proc = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                ],
                stdout=subprocess.DEVNULL,
            )
            storage = {"type": "redis", "connection_string": f"redis://127.0.0.1:{port}/0"}
            import redis

            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
        for i in range(replicas):
            cfg = {
                "server": {"port": _free_port()},
                "storage": storage,
                "channels": {"enterprise_chat": {"mode": "stream", "endpoint": url}},
                "skills": {"home": str(work / "home")},
                "limits": {
                    "user_per_minute": 0,
                    "conversation_per_minute": 0,
                    "global_per_second": 0,
                },
                "audit": {"path": str(work / f"audit-{i}" / "messages.jsonl")},
                "logging": {"level": "WARNING"},
            }
            p = work / f"runtime-{i}.json"
            p.write_text(json.dumps(cfg))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(p)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(work / f"runtime-{i}.log").open("w"),
                )
            )
        emu.wait_connections(replicas, timeout=60)
        texts = _texts(root)
        say(f"bench: {replicas} runtime process(es) connected; warming up")
        warm = [emu.send(texts[i % len(texts)], sender_id=f"warm-{i}") for i in range(50)]
        for w in warm:
            emu.wait_reply(w, timeout=30)

        # phase 1: sustained rate with a window of in-flight messages
        say(f"bench: phase 1: {messages} messages from {users} users, window {window}")
        cond = threading.Condition()
        ids: list[str] = []
        base = emu.counters["replies"]
        t0 = time.perf_counter()
        for i in range(messages):
            while len(ids) - (emu.counters["replies"] - base) >= window:
                with emu._reply_cond:
                    emu._reply_cond.wait(0.05)
            ids.append(
                emu.send(
                    texts[i % len(texts)],
                    sender_id=f"user-{i % users}",
                    sender_nick=f"用户{i % users}",
                )
            )
        emu.wait_for(lambda: emu.counters["replies"] - base >= messages, timeout=120)
        elapsed = time.perf_counter() - t0
        sustained = messages / elapsed
        say(f"bench: phase 1: {sustained:.0f} msg/s")
        del cond

        # phase 2: offered load, end-to-end latency
        n2 = int(rate * duration)
        say(f"bench: phase 2: {rate:g} msg/s offered for {duration:g} s")
        ids2: list[str] = []
        start = time.perf_counter()
        for i in range(n2):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load
            ids2.append(emu.send(texts[(i * 7) % len(texts)], sender_id=f"user-{i % users}"))
        try:
            emu.wait_for(lambda: all(emu.messages[m].replies for m in ids2), timeout=60)
        except TimeoutError:
            pass
        lat = [
            emu.messages[m].replies[0]["at_ms"] - emu.messages[m].pushed_ms
            for m in ids2
            if emu.messages[m].replies
        ]
        all_ids = ids + ids2
        lost = sum(1 for m in all_ids if not emu.messages[m].replies)
        dup = sum(1 for m in all_ids if len(emu.messages[m].replies) > 1)
        return {
            "msgs_per_s": round(sustained, 1),
            "p50_ms": _pct(lat, 0.50),
            "p99_ms": _pct(lat, 0.99),
            "lost": lost,
            "duplicated": dup,
            "replicas": replicas,
            "messages": messages,
            "users": users,
            "window": window,
            "offered_rate": rate,
            "offered_seconds": duration,
            "latency_samples": len(lat),
            "max_ms": max(lat) if lat else None,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        emu.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        if not os.environ.get("DINGSKILL_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"bench: kept {work}")
