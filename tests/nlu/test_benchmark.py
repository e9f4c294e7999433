"""The CLINC150 benchmark function end to end on a small slice written to a temp folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dingskill.evaluation import benchmark
from dingskill.evaluation.benchmark import BenchmarkDataError, clinc150_benchmark

KEYS = {
    "in_scope_accuracy",
    "oos_recall",
    "train_seconds",
    "predict_p50_ms",
    "predict_p99_ms",
    "batch_utterances_per_s",
}


def _bench_script(name: str):
    """The module of ``bench/<name>.py`` (the bench folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_clinc(tmp_path, clinc_home, monkeypatch):
    src = json.loads((clinc_home / "data_small.json").read_text())
    keep = sorted({lab for _, lab in src["train"]})[:15]
    tiny = {k: [r for r in v if r[1] in keep or k.startswith("oos")] for k, v in src.items()}
    raw = json.dumps(tiny).encode()
    (tmp_path / "data_small.json").write_bytes(raw)
    import hashlib

    monkeypatch.setitem(benchmark.SHA256, "small", hashlib.sha256(raw).hexdigest())
    return tmp_path


def test_benchmark_runs_end_to_end(tiny_clinc):
    result = clinc150_benchmark(data_home=tiny_clinc, variant="small", progress=False)
    assert set(result) == KEYS
    assert result["in_scope_accuracy"] >= 70.0
    assert 0.0 <= result["oos_recall"] <= 100.0
    assert result["predict_p99_ms"] >= result["predict_p50_ms"] > 0


def test_benchmark_checks_the_checksum(tmp_path):
    (tmp_path / "data_full.json").write_text("{}")
    with pytest.raises(BenchmarkDataError, match="sha256"):
        clinc150_benchmark(data_home=tmp_path, progress=False)
    with pytest.raises(BenchmarkDataError, match="not found"):
        clinc150_benchmark(data_home=tmp_path / "nope", progress=False)


def test_ablation_bench_runs_on_a_slice(tiny_clinc, capsys):
    """bench/clinc_ablation.py (figures in bench/RESULTS.md) still runs: every part, briefly."""
    ablation = _bench_script("clinc_ablation")
    args = ["--data-home", str(tiny_clinc), "--variant", "small", "--repeats", "3", "--json"]
    assert ablation.main([*args, "--part", "all", "--variants", "default", "rff512"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in out["closed"]] == ["default", "rff512"]
    assert all(50.0 <= r["test_closed"] <= 100.0 for r in out["closed"])
    assert len(out["fusion"]) == 2 and len(out["reject"]) == 9
    assert all(0.0 <= r["test_oos_recall"] <= 100.0 for r in out["reject"])


def test_unseen_bench_runs_on_the_chinese_set(capsys):
    """bench/unseen.py (figures in bench/RESULTS.md) runs from the installed extra."""
    unseen = _bench_script("unseen")
    assert unseen.main(["--folds", "2", "--languages", "chinese", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])["chatterbot-chinese"]
    assert row["n"] > 400 and row["intents"] >= 10
    # the default classifier beats the plain baseline on this data it was not tuned on
    assert row["default, closed set"] > row["baseline"]
    assert 80.0 <= row["default answered %"] <= 100.0


def test_encoder_and_store_contention_benches_run(tmp_path):
    """bench/encoder_forward.py, bench/store_contention.py, bench/pipeline.py with the
    runtime's store and bench/idle_gap.py (figures in bench/RESULTS.md) run as written there,
    briefly: the graph and numpy agree, both processes answer, lone messages go through the
    SQLite store, every gap is measured."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "sdk")}

    from tests.runtime.harness import timeout_scale

    def last_json(*args: str) -> dict:
        done = subprocess.run(  # killed if it outlives the limit
            [sys.executable, *args, "--json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180 * timeout_scale(),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    enc = last_json("bench/encoder_forward.py", "--utterances", "32")
    assert enc["max_abs_difference"] < 1e-5 and enc["utterances"] == 32
    assert all(enc[f"{p}_batch{b}_cpu_ms"] > 0 for p in ("graph", "numpy") for b in (1, 4, 16))
    store = last_json("bench/store_contention.py", "--messages", "60", "--rate", "600")
    assert len(store["processes"]) == 2
    assert all(p["p50_ms"] > 0 and p["inline"] > 0 for p in store["processes"])
    lone = last_json(
        "bench/pipeline.py", "--messages", "40", "--distinct", "--window", "1", "--store", "sqlite"
    )
    assert (lone["store"], lone["window"], lone["messages"]) == ("sqlite", 1, 40)
    assert lone["cpu_ms_per_message"] > 0 and lone["new_share"] == 1.0
    gap = last_json("bench/idle_gap.py", "--utterances", "12", "--gaps", "0,5", "--warm", "100")
    assert {(r["pause"], r["gap_ms"]) for r in gap["rows"]} == {
        (kind, ms) for kind in ("sleep", "spin") for ms in (0.0, 5.0)
    }
    assert all(r["p50_ms"] > 0 for r in gap["rows"])
