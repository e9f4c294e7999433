"""Where a message's time goes inside the runtime's workers, stage by stage.

    PYTHONPATH=sdk python bench/stage_times.py [--messages 10000] [--rate 200] [--duration 10]
                                               [--traffic distinct] [--json]

Runs ``dingskill bench runtime --processes 2 --no-anchor`` (``--traffic`` distinct by default)
with a ``sitecustomize`` module, written to a temporary folder put first on ``PYTHONPATH``,
that loads this file in each worker process (and only there) and wraps the methods below
with ``time.perf_counter`` and ``time.thread_time`` (what they do is unchanged; each call
costs a few microseconds more). A worker writes its timings when it exits. The report covers the
benchmark's latency phase (its last ``--duration`` seconds, less half a second: lone
messages at ``--rate`` msg/s): per stage, the p50 / p90 / p99 in ms over every worker, then
the mean of each loop stage for the slowest 3 % of messages. The last line is one JSON
object with ``--json``.

Stages on the event loop (wall time of one message's call): ``process`` (the whole
``Pipeline.process``), ``claim``, ``begin`` (context and turn lease), ``understand`` (the
hand-over to the classification thread and back), ``engine``, ``end`` (context saved),
``deliver`` (the reply's POST). In the classification thread (thread CPU of one batch):
``compute`` (all of it), ``encoder``, ``graph`` (its ONNX Runtime call), ``route`` (every
skill's decision and the arbitration), ``entities``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = "DINGSKILL_STAGE_TIMES"  # the folder the workers write their timings to
LOOP = ("process", "claim", "begin", "understand", "engine", "end", "deliver")
THREAD = ("compute", "encoder", "graph", "route", "entities")
_RECORDS: list = []  # (start, stage, seconds, task id or 0), in a worker


def _wrap_async(owner, name: str, stage: str) -> None:
    import asyncio
    import functools

    inner = getattr(owner, name)

    @functools.wraps(inner)
    async def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            task = asyncio.current_task()
            _RECORDS.append((t0, stage, time.perf_counter() - t0, id(task) if task else 0))

    setattr(owner, name, timed)


def _wrap_cpu(owner, name: str, stage: str) -> None:
    import functools

    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            _RECORDS.append((t0, stage, time.thread_time() - c0, 0))

    setattr(owner, name, timed)


def install() -> None:
    """Wrap the stages' methods (in a worker process: called from the sitecustomize)."""
    from dingskill.nlu import use_m3, use_m3_graph
    from dingskill.runtime import delivery, pipeline, understanding
    from dingskill.skills import engine, entities

    P = pipeline.Pipeline
    for name, stage in (
        ("process", "process"),
        ("_admit", "claim"),
        ("_begin", "begin"),
        ("_end", "end"),
    ):
        _wrap_async(P, name, stage)
    _wrap_async(understanding.Understanding, "prepare", "understand")
    _wrap_async(engine.Engine, "handle", "engine")
    _wrap_async(delivery.Delivery, "deliver", "deliver")
    _wrap_cpu(understanding.Understanding, "_compute", "compute")
    _wrap_cpu(understanding, "_route_ahead", "route")  # called by its module-level name
    _wrap_cpu(use_m3.UseM3Encoder, "transform", "encoder")
    _wrap_cpu(use_m3_graph.GraphForward, "run", "graph")
    _wrap_cpu(entities.EntityCache, "fill", "entities")


def _loaded(name: str) -> bool:
    """Whether module ``name`` is imported and done executing."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def _install_in_worker() -> None:
    """From the sitecustomize: in a worker, install once the runtime's modules are imported
    (a watcher thread: the worker imports them while it starts), and write the timings at
    exit."""
    import atexit
    import threading

    folder = os.environ.get(ENV)
    if not folder or os.environ.get("DINGSKILL_WORKER") is None:
        return
    needed = (
        "dingskill.runtime.pipeline",
        "dingskill.runtime.understanding",
        "dingskill.runtime.delivery",
        "dingskill.skills.engine",
    )

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not all(_loaded(m) for m in needed):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        try:
            install()
        except Exception as exc:  # noqa: BLE001 - reported in the worker's own output
            print(f"stage_times: not installed: {type(exc).__name__}: {exc}", file=sys.stderr)

    threading.Thread(target=watch, name="stage-times", daemon=True).start()

    def dump() -> None:
        Path(folder, f"{os.getpid()}.json").write_text(json.dumps(_RECORDS))

    atexit.register(dump)


def _message_of(record, spans: dict) -> float | None:
    """The start of the message (of the window) a loop stage's record belongs to: its task's
    message whose ``process()`` encloses it (a task id may be reused later), or None."""
    for start, end in spans.get(record[3], ()):
        if start <= record[0] <= end:
            return start
    return None


def summarize(runs: list[list], window_s: float) -> dict:
    """Per-stage percentiles (ms) over the last ``window_s`` seconds of each worker's
    records, and the loop stages' means for the slowest 3 % of messages."""
    import numpy as np

    by_stage: dict[str, list[float]] = {s: [] for s in (*LOOP, *THREAD)}
    slow: dict[str, list[float]] = {s: [] for s in LOOP}
    messages = 0
    for records in runs:
        starts = [r[0] for r in records if r[1] == "process"]
        if not starts:
            continue
        since = max(starts) - window_s
        procs = [r for r in records if r[1] == "process" and r[0] >= since]
        messages += len(procs)
        # a loop stage counts when its message's process() started in the window (a stage
        # starting just inside it may belong to a message that started before); the
        # classification thread's batches by their own start
        spans: dict[int, list[tuple[float, float]]] = {}  # task id -> its messages' times
        for t0, _s, seconds, task in procs:
            spans.setdefault(task, []).append((t0, t0 + seconds))
        limit = float(np.percentile([p[2] for p in procs], 97))
        slowest = {(p[3], p[0]) for p in procs if p[2] >= limit}
        for record in records:
            t0, stage, seconds, task = record
            if not task:
                if t0 >= since:
                    by_stage[stage].append(seconds * 1000)
                continue
            start = _message_of(record, spans)
            if start is None:
                continue
            by_stage[stage].append(seconds * 1000)
            if (task, start) in slowest:
                slow[stage].append(seconds * 1000)
    rows = []
    for stage, values in by_stage.items():
        if values:
            v = np.asarray(values)
            rows.append(
                {
                    "stage": stage,
                    "where": "loop" if stage in LOOP else "classification thread (CPU)",
                    "calls": len(v),
                    "p50_ms": round(float(np.percentile(v, 50)), 3),
                    "p90_ms": round(float(np.percentile(v, 90)), 3),
                    "p99_ms": round(float(np.percentile(v, 99)), 3),
                    "slowest_3pct_mean_ms": (
                        round(float(np.mean(slow[stage])), 3) if slow.get(stage) else None
                    ),
                }
            )
    return {"messages": messages, "window_s": window_s, "stages": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--traffic", choices=["repeat", "distinct", "mixed"], default="distinct")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.duration <= 1:
        ap.error(f"--duration must be more than 1 second, got {args.duration}")

    with tempfile.TemporaryDirectory(prefix="dingskill-stages-") as tmp:
        hooks, out = Path(tmp, "hooks"), Path(tmp, "out")
        hooks.mkdir()
        out.mkdir()
        (hooks / "sitecustomize.py").write_text(
            "import importlib.util as _u\n"
            f"_s = _u.spec_from_file_location('dingskill_stage_times', {str(Path(__file__))!r})\n"
            "_m = _u.module_from_spec(_s)\n"
            "_s.loader.exec_module(_m)\n"
            "_m._install_in_worker()\n"
        )
        path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, ENV: str(out)}
        cmd = [
            sys.executable,
            "-c",
            "from dingskill.cli.main import main; raise SystemExit(main())",
        ]
        cmd += ["bench", "runtime", "--processes", "2", "--no-anchor", "--json"]
        cmd += ["--traffic", args.traffic, "--messages", str(args.messages)]
        cmd += ["--rate", str(args.rate), "--duration", str(args.duration)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"dingskill bench runtime failed ({done.returncode}):\n{done.stderr[-4000:]}")
        bench = json.loads(done.stdout.strip().splitlines()[-1])
        runs = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    if not any(r[1] == "process" for run in runs for r in run):
        sys.exit(
            f"no message was timed ({len(runs)} workers wrote timings); the benchmark's "
            f"output (look for 'stage_times: not installed'):\n{done.stderr[-4000:]}"
        )
    report = summarize(runs, args.duration - 0.5)
    report.update(
        workers=len(runs),
        traffic=args.traffic,
        rate=args.rate,
        bench_p50_ms=bench.get("p50_ms"),
        bench_p99_ms=bench.get("p99_ms"),
    )
    import pandas as pd

    print(
        f"{report['messages']} messages in the last {report['window_s']:g} s of "
        f"{len(runs)} workers ({args.traffic}, {args.rate:g} msg/s offered); "
        f"the benchmark's own p50 / p99: {bench.get('p50_ms')} / {bench.get('p99_ms')} ms"
    )
    print(pd.DataFrame(report["stages"]).to_string(index=False))
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
