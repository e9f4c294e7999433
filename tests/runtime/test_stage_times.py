"""bench/stage_times.py (figures in bench/RESULTS.md) runs as written there, briefly: both
workers of a real ``dingskill bench runtime`` time every stage of the messages of the latency
phase, and the stages add up (each inside the whole ``Pipeline.process``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.runtime.harness import scaled, spawn

ROOT = Path(__file__).resolve().parents[2]


def test_stage_times_bench_times_every_stage_in_both_workers():
    # its own process group, registered before the wait: the benchmark's runtime, workers and
    # emulator are stopped with it whatever happens
    proc = spawn(
        [sys.executable, "bench/stage_times.py", "--messages", "300", "--rate", "100"]
        + ["--duration", "2", "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "sdk")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=scaled(240))
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        code = "still running after its limit"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the benchmark left running
        except ProcessLookupError:
            pass
    assert code == 0, f"exit {code}\n{stdout[-4000:]}{stderr[-4000:]}"
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["workers"] == 2 and report["traffic"] == "distinct"
    stages = {row["stage"]: row for row in report["stages"]}
    # distinct texts: every message of the phase goes through every stage once
    assert {"process", "claim", "begin", "understand", "engine", "end", "deliver"} <= set(stages)
    assert {"compute", "encoder", "graph", "route"} <= set(stages)
    n = stages["process"]["calls"]
    assert n == report["messages"] and n >= 50  # ~150 at 100 msg/s for 1.5 s
    assert stages["understand"]["calls"] == n and stages["deliver"]["calls"] == n
    for name in ("claim", "understand", "engine", "deliver"):
        assert 0 < stages[name]["p50_ms"] <= stages["process"]["p99_ms"]
    assert stages["graph"]["p50_ms"] <= stages["encoder"]["p50_ms"] <= stages["compute"]["p99_ms"]
    # the table is printed before the JSON line
    assert "stage" in stdout and "understand" in stdout
