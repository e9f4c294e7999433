"""bench/stage_times.py (figures in bench/RESULTS.md) runs as written there, briefly: both
workers of a real ``dingskill bench runtime`` time every stage of the messages of the latency
phase, and the stages add up (each inside the whole ``Pipeline.process``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.runtime.harness import timeout_scale

ROOT = Path(__file__).resolve().parents[2]


def test_stage_times_bench_times_every_stage_in_both_workers():
    done = subprocess.run(  # killed if it outlives the limit
        [sys.executable, "bench/stage_times.py", "--messages", "300", "--rate", "100"]
        + ["--duration", "2", "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "sdk")},
        capture_output=True,
        text=True,
        timeout=240 * timeout_scale(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
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
    assert "stage" in done.stdout and "understand" in done.stdout
