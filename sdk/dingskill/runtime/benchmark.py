"""``dingskill bench runtime``: throughput and end-to-end latency of the Stream runtime.

Starts the local emulator (in this process) and ``dingskill run`` process(es) with the
example skills installed in a temporary home (the real dingtalk-stream SDK, SQLite for one
replica, a real redis-server for several), then

1. sends ``messages`` messages from ``users`` users keeping ``window`` in flight, to find the
   sustained rate (messages answered per second);
2. offers ``rate`` messages per second for ``duration`` seconds and measures end-to-end
   latency: from the emulator pushing the frame to it receiving the reply.

Rate limits are switched off for the run (they would throttle the synthetic users).
``DINGSKILL_BENCH_CONFIG`` (JSON, optional) is merged into the runtime's configuration per
section, e.g. ``{"understanding": {"workers": 1, "max_batch": 1}}`` to compare settings."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_benchmark"]

APP = ("dingbenchapp", "bench-app-secret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(root: Path) -> list[str]:
    """The repeated traffic's utterances (kept for callers of the old name)."""
    from .traffic import repeat_texts

    return repeat_texts(root)


class Texts:
    """The texts of one benchmark run, handed out in order (``take``), so that with
    ``distinct`` traffic no utterance is sent twice across warm-up and phases."""

    def __init__(self, kind: str, total: int, root: Path, data_home=None) -> None:
        from .traffic import draw

        self.kind = kind
        self.texts = draw(kind, total, root, data_home)
        self.pos = 0
        self._root, self._home = root, data_home

    def take(self, n: int) -> list[str]:
        if self.pos + n > len(self.texts):  # more than drawn: draw on (same sequence)
            from .traffic import draw

            self.texts = draw(self.kind, self.pos + n, Path(self._root), self._home)
        out = self.texts[self.pos : self.pos + n]
        self.pos += n
        return out

    def rewind(self) -> None:
        """Start over (the anchors get the same texts as the runtime)."""
        self.pos = 0

    def figures(self) -> dict:
        """The traffic's name and its share of first occurrences among the texts sent."""
        from .traffic import new_share

        return {"traffic": self.kind, "new_share": round(new_share(self.texts[: self.pos]), 4)}


def _scrape(port: int, name: str, labels: str = "") -> float:
    """The sum of metric ``name`` (lines that contain ``labels``) at 127.0.0.1:``port``."""
    from .. import http_sync

    try:
        text = http_sync.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except Exception:  # noqa: BLE001 - figures, not a test: a missing one shows as 0
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def cache_figures(ports: list[int]) -> dict:
    """The runtime(s)' utterance-cache hit rate and messages shed, from their /metrics."""
    hit = sum(_scrape(p, "dingskill_understanding_cache_total", 'result="hit"') for p in ports)
    miss = sum(_scrape(p, "dingskill_understanding_cache_total", 'result="miss"') for p in ports)
    batches = sum(_scrape(p, "dingskill_understanding_batch_size_count") for p in ports)
    encoded = sum(_scrape(p, "dingskill_understanding_batch_size_sum") for p in ports)
    return {
        "cache_hit_rate": round(hit / (hit + miss), 4) if hit + miss else None,
        "mean_batch": round(encoded / batches, 2) if batches else None,
        "shed": int(sum(_scrape(p, "dingskill_messages_shed_total") for p in ports)),
    }


def _proc_cpu(pids: list[int], children: bool = False) -> float:
    """User + system CPU seconds of processes ``pids`` (from /proc; 0 where unreadable);
    ``children``: with their children that were waited for (cutime, cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    last = 15 if children else 13  # utime stime [cutime cstime]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:last])
    return total / tick


def _tree(pids: list[int]) -> list[int]:
    """``pids`` and all their descendants alive now (from /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(c for c, pp in parent.items() if pp == pid)
    return out


def _latency_ms(m) -> float:
    """Push of message ``m`` to its first reply, in ms to the microsecond (the emulator's
    monotonic clock; its wire timestamps are whole ms, which would round a 1.4 ms p99 to 1)."""
    return round((m.replies[0]["at_ns"] - m.pushed_ns) / 1e6, 3)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _delivery(emu, ids: list[str], lat: list[float], paced: list[str] | None = None) -> dict:
    """Latency percentiles of ``lat`` and what became of messages ``ids`` (lost: never
    answered; duplicated: answered twice): the figures every runtime benchmark reports.
    ``paced``: the ids of the latency phase (``accepted_p99_ms``: those not shed)."""
    from .understanding import BUSY

    busy = set(BUSY.values())

    def shed(m) -> bool:
        body = m.replies[0].get("body") or {}
        return isinstance(body, dict) and (body.get("text") or {}).get("content") in busy

    busy_replies = sum(1 for m in ids if emu.messages[m].replies and shed(emu.messages[m]))
    kept = [
        _latency_ms(emu.messages[m])
        for m in (paced if paced is not None else ids)
        if emu.messages[m].replies and not shed(emu.messages[m])
    ]
    return {
        "p50_ms": _pct(lat, 0.50),
        "p99_ms": _pct(lat, 0.99),
        # the messages answered (not "busy, please retry"): what the runtime accepted
        "accepted_p99_ms": _pct(kept, 0.99),
        "busy_replies": busy_replies,
        "lost": sum(1 for m in ids if not emu.messages[m].replies),
        "duplicated": sum(1 for m in ids if len(emu.messages[m].replies) > 1),
        "latency_samples": len(lat),
        "max_ms": max(lat) if lat else None,
    }


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _start_redis(port: int, work: Path) -> subprocess.Popen:
    """A throw-away redis-server on 127.0.0.1:``port`` (no persistence) for a benchmark."""
    return subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
    )


def _paced_phase(
    emu, texts: Texts, users, rate, duration, wait_s: float, settle_s: float
) -> tuple[list[str], list[float]]:
    """Offer ``rate`` msg/s for ``duration`` s, wait up to ``wait_s`` for the answers, then
    ``settle_s`` more so that a late second answer shows; returns the ids and latencies (ms)."""
    batch = texts.take(int(rate * duration))
    with _harness_frozen():
        return _paced(emu, batch, users, rate, wait_s, settle_s)


@contextlib.contextmanager
def _harness_frozen():
    """The harness's own objects (the emulator's record of every message so far) moved out
    of the cyclic collector's reach for a measured phase: its full collections of them took
    100+ ms in this process and were measured as the bot's latency (every reply that
    arrived meanwhile waited for it). The bot under test is not affected."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _paced(emu, batch: list[str], users, rate, wait_s: float, settle_s: float):
    ids: list[str] = []
    start = time.perf_counter()
    for i, text in enumerate(batch):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the offered load
        ids.append(emu.send(text, sender_id=f"user-{i % users}"))
    try:
        emu.wait_for(lambda: all(emu.messages[m].replies for m in ids), timeout=wait_s)
    except TimeoutError:
        pass
    time.sleep(settle_s)
    lat = [_latency_ms(emu.messages[m]) for m in ids if emu.messages[m].replies]
    return ids, lat


def _drive(emu, texts, messages, users, window, rate, duration, say, label) -> dict:
    """Warm up, then phase 1 (sustained rate, ``window`` in flight) and phase 2 (``rate``
    offered for ``duration`` s, end-to-end latency from push to reply) on the connected bot."""
    cpu0, sent0 = time.process_time(), texts.pos
    warm = [emu.send(t, sender_id=f"warm-{i}") for i, t in enumerate(texts.take(50))]
    for w in warm:
        emu.wait_reply(w, timeout=60)
    say(f"bench[{label}]: phase 1: {messages} messages from {users} users, window {window}")
    phase1 = texts.take(messages)
    with _harness_frozen():
        sustained, ids, base = _phase1(emu, phase1, messages, users, window)
    say(f"bench[{label}]: phase 1: {sustained:.0f} msg/s")
    say(f"bench[{label}]: phase 2: {rate:g} msg/s offered for {duration:g} s")
    ids2, lat = _paced_phase(emu, texts, users, rate, duration, wait_s=60, settle_s=0.5)
    # this process's CPU (the emulator and the load driver) per message: it shares the
    # machine's cores with the bot under test
    harness_ms = (time.process_time() - cpu0) * 1000 / max(1, texts.pos - sent0)
    return {
        "msgs_per_s": round(sustained, 1),
        **_delivery(emu, ids + ids2, lat, ids2),
        "harness_cpu_ms_per_message": round(harness_ms, 3),
    }


def _phase1(emu, phase1: list[str], messages: int, users, window) -> tuple[float, list, int]:
    """``messages`` sent keeping ``window`` in flight; msg/s until the last reply."""
    ids: list[str] = []
    base = emu.counters["replies"]
    t0 = time.perf_counter()
    i = 0
    while i < messages:
        room = window - (len(ids) - (emu.counters["replies"] - base))
        if room <= 0:
            with emu._reply_cond:
                emu._reply_cond.wait(0.05)
            continue
        # a batch per wake-up: one hop to the emulator's loop, not one per message
        batch = [
            {
                "text": phase1[k],
                "sender_id": f"user-{k % users}",
                "sender_nick": f"用户{k % users}",
            }
            for k in range(i, min(messages, i + room))
        ]
        ids += emu.send_many(batch)
        i += len(batch)
    try:
        emu.wait_for(lambda: emu.counters["replies"] - base >= messages, timeout=180)
    except TimeoutError:
        pass
    return messages / (time.perf_counter() - t0), ids, base


# the headline figures of one round, kept per round by summarize_rounds
ROUND_FIGURES = (
    "msgs_per_s",
    "echo_msgs_per_s",
    "ratio_msgs_per_s",
    "p50_ms",
    "p99_ms",
    "echo_p99_ms",
    "ratio_p99",
    "cpu_ms_per_message",
    "lost",
    "duplicated",
)


def summarize_rounds(results: list[dict]) -> dict:
    """Several rounds of one benchmark, run back to back: the last round's figures, each
    round's headline figures (``rounds``), their medians (``median_<figure>``) and the lost
    and duplicated messages of every round added up (``lost_total``, ``duplicated_total``).

    A shared machine's speed drifts within minutes (the echo alone: 650-1,080 msg/s in one
    afternoon here), and each round measures the runtime and then its anchor, so a ratio is
    quoted as the median of rounds, with the spread beside it."""
    if not results:
        raise ValueError("summarize_rounds: no rounds to summarize")
    out = dict(results[-1])
    out["rounds"] = [{k: r[k] for k in ROUND_FIGURES if k in r} for r in results]
    for key in ROUND_FIGURES:
        values = [r[key] for r in results if isinstance(r.get(key), int | float)]
        if values and key not in ("lost", "duplicated"):
            out[f"median_{key}"] = round(statistics.median(values), 3)
    out["lost_total"] = sum(r.get("lost", 0) or 0 for r in results)
    out["duplicated_total"] = sum(r.get("duplicated", 0) or 0 for r in results)
    return out


def run_benchmark(
    replicas: int = 1,
    processes: int = 1,
    messages: int = 10_000,
    users: int = 200,
    rate: float = 200.0,
    duration: float = 10.0,
    progress: bool = True,
    window: int = 200,
    project=None,
    anchor: bool = True,
    starve: int = 0,
    resend_after: float = 30.0,
    delivery: str = "once",
    traffic: str = "mixed",
    data_home=None,
) -> dict:
    """``processes``: worker processes of each runtime (``processes.count``; 0: one per
    core). ``project``: the folder holding the example skills and datasets (default:
    :func:`dingskill.project.find_project`). ``anchor``: also drive the bare SDK echo bot
    and the harness's raw ceiling bot through the same phases (``echo_*``, ``raw_*`` keys).
    ``starve``: CPU-bound processes running beside everything (a starved machine).
    ``resend_after``: the emulator re-pushes a message not ACKed within this many seconds
    (short values resend messages whose first attempt is still running) when ``delivery`` is
    ``until_ack`` (the emulator's lenient setting; ``once`` is the platform's documented one).
    ``traffic``: ``repeat``, ``distinct`` or ``mixed`` texts (:mod:`dingskill.runtime.traffic`;
    ``data_home``: where CLINC150 and CAIS are, default ``../shared/datasets``)."""
    from ..emulator import Emulator
    from ..project import find_project
    from ..skills import Skill
    from ..skills.packaging import SkillHome

    root = find_project(project)
    work = Path(tempfile.mkdtemp(prefix="dingskill-bench-"))
    procs: list[subprocess.Popen] = []
    redis_proc = None
    emu = Emulator(
        {APP[0]: APP[1]}, ack_timeout=resend_after, max_attempts=1000, robot_delivery=delivery
    )
    hogs: list[subprocess.Popen] = []
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    try:
        home = SkillHome(work / "home")
        for name in ("hr-assistant", "faq-en"):
            home.install(Skill.load(root / "skills" / name).export(work / "dist"))
        url = emu.start()
        storage: dict = {"type": "sqlite", "path": str(work / "runtime.db")}
        if replicas > 1:
            port = _free_port()
            redis_proc = _start_redis(port, work)
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
        ports = [_free_port() for _ in range(replicas)]
        for i in range(replicas):
            cfg = {
                "server": {"port": ports[i]},
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
                "processes": {"count": processes},
            }
            for section, values in json.loads(
                os.environ.get("DINGSKILL_BENCH_CONFIG", "{}")
            ).items():
                cfg[section] = {**cfg.get(section, {}), **values}  # e.g. {"understanding": {...}}
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
        from .supervisor import resolve_count

        per_runtime = resolve_count(processes)
        emu.wait_connections(replicas * per_runtime, timeout=60)
        texts = Texts(traffic, 50 + messages + int(rate * duration), root, data_home)
        for _ in range(starve):
            hogs.append(
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL
                )
            )
        say(f"bench: {replicas} runtime process(es) connected ({starve} CPU hogs beside)")
        roots = [p.pid for p in procs]
        # with every process under them: the workers of a multi-process runtime and the
        # template sandboxes (started when first needed)
        cpu0 = {pid: _proc_cpu([pid]) for pid in _tree(roots)}
        result = _drive(emu, texts, messages, users, window, rate, duration, say, "runtime")
        # CPU of the runtime process(es) per message handled (warm-up and both phases)
        spent = sum(_proc_cpu([pid]) - cpu0.get(pid, 0.0) for pid in _tree(roots))
        cpu_ms = spent * 1000 / max(1, texts.pos)
        result["cpu_ms_per_message"] = round(cpu_ms, 3)
        result["projected_msgs_per_s"] = {  # as many runtime processes as cores (replicas)
            f"{cores}_cores": round(cores * 1000 / cpu_ms) if cpu_ms else None
            for cores in (2, 8, 32)
        }
        result.update(
            replicas=replicas,
            processes=per_runtime,
            messages=messages,
            users=users,
            window=window,
            offered_rate=rate,
            offered_seconds=duration,
            starve=starve,
            delivery=delivery,
            resend_after_s=resend_after,
            redelivered=emu.counters["redelivered"],
            **texts.figures(),
            **cache_figures(ports),
        )
        _stop(procs)
        if anchor:
            for kind in ("echo", "raw"):
                base = emu.counters["redelivered"]
                bot = subprocess.Popen(
                    [sys.executable, "-m", "dingskill.runtime.bench_bots", kind, url, *APP],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(work / f"{kind}.log").open("w"),
                )
                procs.append(bot)
                emu.wait_connections(1, timeout=60)
                texts.rewind()
                bot_cpu0 = _proc_cpu([bot.pid])
                r = _drive(emu, texts, messages, users, window, rate, duration, say, kind)
                r["cpu_ms_per_message"] = round(
                    (_proc_cpu([bot.pid]) - bot_cpu0) * 1000 / max(1, texts.pos), 3
                )
                r["redelivered"] = emu.counters["redelivered"] - base
                _stop([bot])
                result.update({f"{kind}_{k}": v for k, v in r.items()})
            result["ratio_msgs_per_s"] = round(result["msgs_per_s"] / result["echo_msgs_per_s"], 2)
            result["ratio_p99"] = round(result["p99_ms"] / max(result["echo_p99_ms"], 0.001), 2)
            result["share_of_ceiling"] = round(result["msgs_per_s"] / result["raw_msgs_per_s"], 2)
        return result
    finally:
        for h in hogs:
            h.kill()
        _stop(procs)
        emu.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        if not os.environ.get("DINGSKILL_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"bench: kept {work}")
