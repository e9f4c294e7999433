"""/metrics over several worker processes (prometheus_client's multiprocess mode).

Every process here is a real subprocess with ``PROMETHEUS_MULTIPROC_DIR`` in its own
environment only: prometheus_client picks its storage when imported, so the pytest process
must never have it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dingskill
import pytest
from dingskill.runtime.metrics import worker_exited
from prometheus_client.parser import text_string_to_metric_families

SDK = str(Path(dingskill.__file__).resolve().parents[1])

# A worker: counts what argv says, prints "ready", stays alive until its stdin has a line.
WORKER = """
import json, sys
from dingskill.runtime.metrics import Metrics
spec = json.loads(sys.argv[1])
m = Metrics()
m.messages.labels("stream", "ok").inc(spec["messages"])
for seconds in spec["latencies"]:
    m.latency.labels("stream").observe(seconds)
m.inflight.inc(spec["inflight"])
m.understand_queue.set(spec["queue"])
m.skills_loaded.set(4)
print("ready", flush=True)
sys.stdin.readline()
"""

RENDER = """
import sys
from dingskill.runtime.metrics import Metrics
sys.stdout.write(Metrics().render().decode())
"""


def _env(directory: Path | str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env["PYTHONPATH"] = os.pathsep.join([SDK, *filter(None, [os.environ.get("PYTHONPATH")])])
    if directory is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return env


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        for stream in (p.stdin, p.stdout):
            if stream:
                stream.close()


def _start(workers: list, directory: Path, **spec) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(spec)],
        env=_env(directory),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    workers.append(p)
    assert p.stdout.readline().strip() == "ready"  # its metrics are in the directory now
    return p


def _stop(p: subprocess.Popen) -> None:
    p.stdin.write("\n")
    p.stdin.flush()
    assert p.wait(timeout=30) == 0


def _render(directory: Path) -> dict[str, list]:
    out = subprocess.run(
        [sys.executable, "-c", RENDER],
        env=_env(directory),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    families = list(text_string_to_metric_families(out))
    names = Counter(f.name for f in families)
    assert [n for n, c in names.items() if c > 1] == []
    samples = Counter(
        (s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples
    )
    assert [k for k, c in samples.items() if c > 1] == []
    return {f.name: f.samples for f in families}


def _value(families: dict[str, list], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in families[family] if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, families[family])
    return found[0]


def test_metrics_are_summed_over_worker_processes(tmp_path: Path, workers: list) -> None:
    a = _start(workers, tmp_path, messages=3, latencies=[0.002, 0.2], inflight=2, queue=5)
    b = _start(workers, tmp_path, messages=2, latencies=[0.02], inflight=1, queue=1)

    m = _render(tmp_path)
    ok = {"channel": "stream", "outcome": "ok"}
    assert _value(m, "dingskill_messages", "dingskill_messages_total", **ok) == 5
    lat = "dingskill_message_latency_seconds"
    assert _value(m, lat, lat + "_count", channel="stream") == 3
    assert _value(m, lat, lat + "_sum", channel="stream") == pytest.approx(0.222)
    assert _value(m, lat, lat + "_bucket", channel="stream", le="0.0025") == 1
    assert _value(m, lat, lat + "_bucket", channel="stream", le="0.025") == 2
    assert _value(m, lat, lat + "_bucket", channel="stream", le="+Inf") == 3
    inflight = "dingskill_inflight_messages"
    assert _value(m, inflight, inflight) == 3
    queue = "dingskill_understanding_queue"
    assert _value(m, queue, queue) == 6
    loaded = "dingskill_skills_loaded"
    assert _value(m, loaded, loaded) == 4  # every worker loads the same skills: not 8
    assert "process_resident_memory_bytes" in m  # the rendering process's own

    _stop(b)
    worker_exited(b.pid, str(tmp_path))
    m = _render(tmp_path)
    assert _value(m, inflight, inflight) == 2  # b's in-flight gauge is gone
    assert _value(m, queue, queue) == 5
    assert _value(m, "dingskill_messages", "dingskill_messages_total", **ok) == 5  # kept
    assert _value(m, lat, lat + "_count", channel="stream") == 3
    _stop(a)


def test_worker_exited_outside_multiprocess_mode_does_nothing(tmp_path: Path) -> None:
    worker_exited(os.getpid())
    worker_exited(os.getpid(), str(tmp_path / "gone"))


def _fails(code: str, directory: Path | str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(directory),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    return done.stderr


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    err = _fails("from dingskill.runtime.metrics import Metrics; Metrics()", missing)
    assert "MultiprocessDirError" in err
    assert f"PROMETHEUS_MULTIPROC_DIR={str(missing)!r} is not an existing directory" in err
    assert not missing.exists()


def test_variable_set_after_import_is_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import os, prometheus_client\n"
        f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}\n"
        "from dingskill.runtime.metrics import Metrics\n"
        "Metrics()\n"
    )
    err = _fails(code, None)
    assert "was set after prometheus_client was imported" in err
