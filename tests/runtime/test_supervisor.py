"""One `dingskill run` with several worker processes (processes.count): each worker holds its
own Stream connection to the emulator, they share the SQLite file, one audit chain and one
/metrics page, and the supervisor restarts a worker that dies and stops them all together."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dingskill.runtime.supervisor import METRICS_PREFIX, OWNER_FILE, sweep_stale_metrics
from prometheus_client.parser import text_string_to_metric_families

from .conftest import APP
from .harness import scaled, spawn, tail, wait_until


def _text(body: dict) -> str:
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text", "")


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (the workers)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _workers(rt) -> list[int]:
    """The worker processes of runtime ``rt`` (its template sandboxes are their children)."""
    return [p for p in _children(rt.proc.pid) if b"DINGSKILL_WORKER" in _environ(p)]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _samples(rt, name: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(rt.metrics()):
        for s in fam.samples:
            if s.name == name:
                total += s.value
    return total


def test_two_workers_share_conversations_metrics_and_audit(home, emulator, start_runtime):
    rt = start_runtime(home, extra={"processes": {"count": 2}})
    emulator.wait_connections(2, timeout=scaled(30))
    assert len(_workers(rt)) == 2
    # a leave request over four turns: the platform hands each turn to either connection
    ids, texts = [], []
    for t in ["我想请假", "年假", "明天", "两天"]:
        i = emulator.send(t, sender_id="staff-31", sender_nick="小林")
        texts.append(_text(emulator.wait_reply(i)))
        ids.append(i)
    assert len({emulator.messages[i].conn_id for i in ids}) == 2  # both workers took turns
    assert texts[-1].startswith("小林，您的年假申请") and "共 2 天" in texts[-1], texts
    # many senders at once: every message answered once, by one of the two workers
    more = [emulator.send("工资条什么时候发", sender_id=f"staff-{n}") for n in range(40)]
    for i in more:
        assert _text(emulator.wait_reply(i))
    assert emulator.counters["replies"] == len(ids) + len(more)
    # worker 0's /metrics is the sum over both workers
    handled = len(ids) + len(more)
    wait_until(
        lambda: _samples(rt, "dingskill_messages_total") >= handled,
        20,
        what="/metrics summing both workers",
        output=rt.metrics,
    )
    assert _samples(rt, "dingskill_messages_total") == handled
    # one audit chain written by both processes, intact
    from dingskill.security.audit_chain import AuditChain

    chain = AuditChain(rt.config_path.parent / "audit" / "messages.jsonl")

    def audited():
        return sum(1 for r in chain.records() if r.get("kind", "message") == "message") >= handled

    wait_until(audited, 20, what="every message audited")
    assert chain.verify() == []
    assert rt.stop("term") == 0


def test_a_killed_worker_is_started_again(home, emulator, start_runtime):
    rt = start_runtime(home, extra={"processes": {"count": 2}})
    emulator.wait_connections(2, timeout=scaled(30))
    before = _workers(rt)
    os.kill(before[1], signal.SIGKILL)
    wait_until(
        lambda: len(w := _workers(rt)) == 2 and before[1] not in w,
        30,
        what="the killed worker started again",
        output=lambda: tail(rt.log),
    )
    emulator.wait_connections(2, timeout=scaled(30))
    for n in range(6):
        assert _text(emulator.wait_reply(emulator.send("工资条", sender_id=f"staff-k{n}")))
    assert "worker exited; starting it again" in tail(rt.log, 20000)


def test_stopping_or_killing_the_supervisor_stops_every_worker(
    home, emulator, start_runtime, tmp_path
):
    rt = start_runtime(home, extra={"processes": {"count": 2}})
    emulator.wait_connections(2, timeout=scaled(30))
    workers = _workers(rt)
    assert rt.stop("term") == 0  # graceful: each worker finishes its messages
    assert not any(_alive(p) for p in workers)
    # a temporary folder of its own: a runtime that another test starts meanwhile (the suite
    # runs files side by side) would otherwise sweep the killed supervisor's folder first
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    rt2 = start_runtime(home, extra={"processes": {"count": 2}}, env={"TMPDIR": str(private_tmp)})
    emulator.wait_connections(2, timeout=scaled(30))
    workers = _workers(rt2)
    owned = _metrics_folders_of(rt2.proc.pid, private_tmp)
    assert len(owned) == 1  # its workers' metric files, marked with its pid
    rt2.proc.kill()  # a supervisor killed outright: its workers get SIGTERM from the kernel
    rt2.proc.wait(scaled(10))
    wait_until(
        lambda: not any(_alive(p) for p in workers),
        30,
        what="workers of a killed supervisor stopping",
    )
    # it could not clean up: the next supervisor's start sweeps its folder away
    assert owned[0].is_dir()
    assert sweep_stale_metrics(str(private_tmp)) == 1
    assert not owned[0].exists()


def _metrics_folders_of(pid: int, folder: Path) -> list[Path]:
    return [
        d
        for d in folder.glob(METRICS_PREFIX + "*")
        if (d / OWNER_FILE).is_file() and (d / OWNER_FILE).read_text().strip() == str(pid)
    ]


def test_stale_metrics_folders_are_swept_and_live_or_foreign_ones_kept(tmp_path):
    """A supervisor killed outright leaves its metrics folder behind; the next one removes
    the folders whose recorded supervisor no longer runs, and only those."""
    gone = spawn([sys.executable, "-c", "pass"])
    assert gone.wait(scaled(30)) == 0
    dead_pid = gone.pid
    folders = {}
    for name, owner in (("dead", str(dead_pid)), ("live", str(os.getpid())), ("bad", "x")):
        d = tmp_path / f"{METRICS_PREFIX}{name}"
        d.mkdir()
        (d / OWNER_FILE).write_text(owner)
        (d / "counter_1.db").write_bytes(b"\0" * 16)
        folders[name] = d
    unmarked = tmp_path / f"{METRICS_PREFIX}unmarked"  # an older layout: not ours to judge
    unmarked.mkdir()
    other = tmp_path / "something-else"
    other.mkdir()
    (other / OWNER_FILE).write_text(str(dead_pid))
    assert sweep_stale_metrics(str(tmp_path)) == 1
    assert not folders["dead"].exists()
    assert folders["live"].is_dir() and folders["bad"].is_dir()
    assert unmarked.is_dir() and other.is_dir()
    assert sweep_stale_metrics(str(tmp_path / "missing")) == 0


def test_the_sweep_never_follows_a_planted_link(tmp_path):
    """In a shared /tmp anybody can name a link like a metrics folder and point it at a
    folder of ours that records a dead pid: the sweep leaves the link and what it points to."""
    gone = spawn([sys.executable, "-c", "pass"])
    assert gone.wait(scaled(30)) == 0
    target = tmp_path / "precious"
    target.mkdir()
    (target / OWNER_FILE).write_text(str(gone.pid))
    (target / "data.txt").write_text("keep me")
    shared = tmp_path / "tmp"
    shared.mkdir()
    (shared / f"{METRICS_PREFIX}planted").symlink_to(target, target_is_directory=True)
    assert sweep_stale_metrics(str(shared)) == 0
    assert (target / "data.txt").read_text() == "keep me"
    assert (shared / f"{METRICS_PREFIX}planted").is_symlink()


def _cli_run(tmp_path: Path, cfg: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
    proc = spawn(
        [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=scaled(60))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_settings_several_workers_cannot_serve_are_refused(tmp_path, home, emulator):
    base = {"skills": {"home": str(home)}, "server": {"port": 0}}
    webhook = {**base, "channels": {"enterprise_chat": {"mode": "webhook"}}}
    r = _cli_run(tmp_path, webhook, "--processes", "2")
    assert r.returncode == 2 and "mode: stream" in r.stderr, r.stderr
    memory = {
        **base,
        "storage": {"type": "memory"},
        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emulator.url}},
    }
    r = _cli_run(tmp_path, memory, "--processes", "2")
    assert r.returncode == 2 and "storage.type sqlite" in r.stderr, r.stderr


def test_a_worker_failing_at_start_fails_the_command(tmp_path, home, emulator):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = {
            "skills": {"home": str(home)},
            "server": {"port": port},
            "storage": {"type": "sqlite", "path": str(tmp_path / "rt.db")},
            "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emulator.url}},
            "audit": {"path": str(tmp_path / "audit" / "messages.jsonl")},
            "processes": {"count": 2},
        }
        r = _cli_run(tmp_path, cfg)
    assert r.returncode > 0, r.stderr  # the worker's own exit code, as one process gives
    assert "address already in use" in r.stderr
    assert f"worker 0 of 2 exited with code {r.returncode}" in r.stderr


def test_an_unreachable_endpoint_is_one_line_before_any_worker(tmp_path, home):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    cfg = {
        "skills": {"home": str(home)},
        "storage": {"type": "sqlite", "path": str(tmp_path / "rt.db")},
        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": f"http://127.0.0.1:{port}"}},
        "processes": {"count": 2},
    }
    r = _cli_run(tmp_path, cfg)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], r.stderr
    assert "supervisor started" not in r.stderr  # no worker was started
