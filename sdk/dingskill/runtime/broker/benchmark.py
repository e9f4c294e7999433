"""``dingskill bench runtime --broker --workers N``: the split deployment under load.

Starts a private rabbitmq-server node, a redis-server, the emulator (in this process), one
``dingskill gateway``, N ``dingskill worker`` and one ``dingskill audit-writer`` (real
processes, the real dingtalk-stream SDK), then

1. sends ``messages`` messages from ``users`` users keeping ``window`` in flight: the
   sustained rate, and the CPU each service spent per message (from /proc);
2. offers ``rate`` messages per second for ``duration`` seconds: end-to-end latency (the
   emulator pushing the frame -> the emulator receiving the reply), p50 / p99.

Every message is checked: ``lost`` (never answered) and ``duplicated`` (answered twice).
The CPU per message gives a projection of the throughput on more cores (``cores /
cpu_seconds_per_message``, an upper bound that assumes the broker and Redis scale with them).
Rate limits are off for the run (they would throttle the synthetic users)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ... import http_sync
from ..benchmark import (
    APP,
    Texts,
    _delivery,
    _drive,
    _free_port,
    _paced_phase,
    _proc_cpu,
    _start_redis,
    _stop,
    cache_figures,
)
from .node import RabbitNode

__all__ = ["run_broker_benchmark"]

ROOT = Path(__file__).resolve().parents[4]


def _group_pids(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                out.append(int(d.name))
    return out


def _metric(port: int, name: str) -> float:
    try:
        text = http_sync.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except http_sync.HttpError:
        return float("nan")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#") and line.split("{")[0].split(" ")[0] == name
    )


def run_broker_benchmark(
    workers: int = 2,
    messages: int = 5_000,
    users: int = 200,
    rate: float = 200.0,
    duration: float = 10.0,
    progress: bool = True,
    window: int = 200,
    shards: int | None = None,
    prefetch: int = 32,
    traffic: str = "mixed",
    data_home=None,
    anchor: bool = True,
) -> dict:
    """``traffic``: ``repeat``, ``distinct`` or ``mixed`` texts (:mod:`dingskill.runtime.traffic`);
    ``anchor``: afterwards drive the bare SDK echo bot through the same phases with the same
    texts (``echo_*`` keys, ``ratio_msgs_per_s``)."""
    from ...emulator import Emulator
    from ...skills import Skill
    from ...skills.packaging import SkillHome

    work = Path(tempfile.mkdtemp(prefix="dingskill-bench-broker-"))
    procs: dict[str, subprocess.Popen] = {}
    ports: dict[str, int] = {}
    node = RabbitNode(work / "rabbit")
    redis_proc = None
    emu = Emulator({APP[0]: APP[1]}, ack_timeout=30.0)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    if shards is None:  # the deployment as configured by default
        from ..settings import Broker

        shards = Broker().shards
    try:
        node.start()
        redis_port = _free_port()
        redis_proc = _start_redis(redis_port, work)
        home = SkillHome(work / "home")
        for name in ("hr-assistant", "faq-en"):
            home.install(Skill.load(ROOT / "skills" / name).export(work / "dist"))
        url = emu.start()
        node.wait_ready(120)
        env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
        roles = ["gateway", "audit-writer"] + [f"worker-{i}" for i in range(workers)]
        for role in roles:
            ports[role] = _free_port()
            cfg = {
                "server": {"port": ports[role]},
                "storage": {
                    "type": "redis",
                    "connection_string": f"redis://127.0.0.1:{redis_port}/0",
                },
                "channels": {"enterprise_chat": {"mode": "stream", "endpoint": url}},
                "skills": {"home": str(work / "home")},
                "limits": {
                    "user_per_minute": 0,
                    "conversation_per_minute": 0,
                    "global_per_second": 0,
                },
                "audit": {"path": str(work / "audit" / "messages.jsonl")},
                "broker": {
                    "url": node.url,
                    "queue": "bench",
                    "shards": shards,
                    "prefetch": prefetch,
                },
                "logging": {"level": "WARNING"},
            }
            path = work / f"{role}.json"
            path.write_text(json.dumps(cfg))
            command = role.split("-")[0] if role.startswith("worker") else role
            procs[role] = subprocess.Popen(
                [sys.executable, "-m", "dingskill.cli.main", command, "--config", str(path)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(work / f"{role}.log").open("w"),
            )
        deadline = time.monotonic() + 180
        for role, port in ports.items():
            while True:
                if procs[role].poll() is not None:
                    raise RuntimeError(
                        f"{role} exited: {(work / f'{role}.log').read_text()[-2000:]}"
                    )
                try:
                    if http_sync.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                        break
                except http_sync.HttpError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{role} not ready: {(work / f'{role}.log').read_text()}")
                time.sleep(0.2)
        emu.wait_connections(1, timeout=60)
        texts = Texts(traffic, 100 + messages + int(rate * duration), ROOT, data_home)
        say(f"bench: gateway + {workers} worker(s) + audit-writer ready; warming up")
        # warm-up until every worker delivers its share of the shards
        for _round in range(30):
            warm = [emu.send(t, sender_id=f"warm-{i}") for i, t in enumerate(texts.take(100))]
            for w in warm:
                emu.wait_reply(w, timeout=60)
            active = [
                _metric(ports[f"worker-{i}"], "dingskill_broker_shards_active")
                for i in range(workers)
            ]
            if workers == 1 or all(a > 0 for a in active):
                break

        pids = {role: [p.pid] for role, p in procs.items()}
        pids["rabbitmq"] = _group_pids(node.proc.pid)
        pids["redis"] = [redis_proc.pid]
        pids["emulator+driver"] = [os.getpid()]
        cpu0 = {role: _proc_cpu(p, children=True) for role, p in pids.items()}

        say(f"bench: phase 1: {messages} messages from {users} users, window {window}")
        ids: list[str] = []
        phase1 = texts.take(messages)
        base = emu.counters["replies"]
        t0 = time.perf_counter()
        for i in range(messages):
            while len(ids) - (emu.counters["replies"] - base) >= window:
                with emu._reply_cond:
                    emu._reply_cond.wait(0.05)
            ids.append(
                emu.send(
                    phase1[i],
                    sender_id=f"user-{i % users}",
                    sender_nick=f"用户{i % users}",
                )
            )
        emu.wait_for(lambda: emu.counters["replies"] - base >= messages, timeout=300)
        elapsed = time.perf_counter() - t0
        sustained = messages / elapsed
        cpu1 = {role: _proc_cpu(p, children=True) for role, p in pids.items()}
        say(f"bench: phase 1: {sustained:.0f} msg/s")
        cpu_ms = {role: round((cpu1[role] - cpu0[role]) * 1000 / messages, 3) for role in pids}
        group = {
            "gateway": cpu_ms["gateway"],
            "workers": round(sum(v for k, v in cpu_ms.items() if k.startswith("worker")), 3),
            "audit_writer": cpu_ms["audit-writer"],
            "rabbitmq": cpu_ms["rabbitmq"],
            "redis": cpu_ms["redis"],
            "emulator_and_driver": cpu_ms["emulator+driver"],
        }
        service_ms = sum(v for k, v in group.items() if k != "emulator_and_driver")

        say(f"bench: phase 2: {rate:g} msg/s offered for {duration:g} s")
        ids2, lat = _paced_phase(emu, texts, users, rate, duration, wait_s=120, settle_s=1.0)
        redeliveries = sum(
            _metric(ports[f"worker-{i}"], "dingskill_broker_redeliveries_total")
            for i in range(workers)
        )
        publish_p = _metric(ports["gateway"], "dingskill_broker_publish_seconds_sum") / max(
            1.0, _metric(ports["gateway"], "dingskill_broker_publish_seconds_count")
        )
        result = {
            "msgs_per_s": round(sustained, 1),
            **_delivery(emu, ids + ids2, lat, ids2),
            "redeliveries": int(redeliveries),
            "broker": True,
            "workers": workers,
            "shards": shards,
            "prefetch": prefetch,
            "messages": messages,
            "users": users,
            "window": window,
            "offered_rate": rate,
            "offered_seconds": duration,
            "publish_confirm_mean_ms": round(publish_p * 1000, 3),
            "cpu_ms_per_message": group,
            "cpu_ms_per_message_services": round(service_ms, 3),
            "projected_msgs_per_s": {
                f"{cores}_cores": round(cores * 1000 / service_ms) if service_ms else None
                for cores in (2, 8, 32)
            },
            "load_average": os.getloadavg()[0],
            **texts.figures(),
            **cache_figures([ports[f"worker-{i}"] for i in range(workers)]),
        }
        if anchor:  # the bare SDK echo bot, same emulator, same texts, same phases
            _stop(list(procs.values()))
            texts.rewind()
            env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
            bot = subprocess.Popen(
                [sys.executable, "-m", "dingskill.runtime.bench_bots", "echo", url, *APP],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(work / "echo.log").open("w"),
            )
            procs["echo"] = bot
            emu.wait_connections(1, timeout=60)
            r = _drive(emu, texts, messages, users, window, rate, duration, say, "echo")
            _stop([bot])
            result.update({f"echo_{k}": v for k, v in r.items()})
            result["ratio_msgs_per_s"] = round(result["msgs_per_s"] / r["msgs_per_s"], 2)
            result["ratio_p99"] = round(result["p99_ms"] / max(r["p99_ms"], 0.001), 2)
        return result
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        emu.stop()
        node.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        if not os.environ.get("DINGSKILL_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"bench: kept {work}")
