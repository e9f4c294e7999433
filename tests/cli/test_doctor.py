"""``dingskill doctor`` against real parts: the emulator's token endpoint, a real
redis-server, a port in use, installed (and tampered) skill packages, an absent broker."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.emulator import Emulator
from dingskill.skills import Skill
from dingskill.skills.packaging import SkillHome

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import RedisServer, free_port  # noqa: E402

APP = ("doctorapp", "doctor-secret")


@pytest.fixture(scope="module")
def emulator():
    with Emulator({APP[0]: APP[1]}) as emu:
        yield emu


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("doctor")
    SkillHome(work / "home").install(Skill.load(ROOT / "skills" / "faq-en").export(work / "dist"))
    return work / "home"


def _config(tmp_path, emulator, home, **extra) -> Path:
    cfg = {
        "server": {"port": free_port()},
        "storage": {"type": "sqlite", "path": str(tmp_path / "r.db")},
        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emulator.url}},
        "skills": {"home": str(home)},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def _doctor(capsys, *args) -> tuple[int, dict]:
    code = main(["doctor", "--json", "--timeout", "3", *args])
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}


def test_a_healthy_setup_passes(tmp_path, emulator, home, capsys, monkeypatch):
    monkeypatch.setenv("DINGSKILL_APP_KEY", APP[0])
    monkeypatch.setenv("DINGSKILL_APP_SECRET", APP[1])
    code, checks = _doctor(capsys, "--config", str(_config(tmp_path, emulator, home)))
    assert code == 0, checks
    assert "access token granted" in checks["credentials"]["detail"]
    assert "com.dingskill.faq-en" in checks["skills"]["detail"]
    assert checks["signatures"]["status"] == "warn"  # unsigned, signatures not required


def test_each_failure_is_named_with_its_fix(tmp_path, emulator, home, capsys, monkeypatch):
    monkeypatch.setenv("DINGSKILL_APP_KEY", APP[0])
    monkeypatch.setenv("DINGSKILL_APP_SECRET", "wrong-secret")
    dead = free_port()
    cfg = _config(
        tmp_path,
        emulator,
        home,
        storage={"type": "redis", "connection_string": f"redis://:pw@127.0.0.1:{dead}/0"},
        broker={"url": f"amqp://guest:secret@127.0.0.1:{dead}/"},
    )
    data = json.loads(cfg.read_text())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", data["server"]["port"]))
        busy.listen()
        code, checks = _doctor(capsys, "--config", str(cfg))
    assert code == 1
    for name, words in {
        "redis": [f"127.0.0.1:{dead}", "start redis-server"],
        "broker": [f"127.0.0.1:{dead}", "broker.url"],
        "credentials": ["refused the token request", "developer console"],
        "port": [str(data["server"]["port"]), "--port"],
    }.items():
        text = checks[name]["detail"] + " " + checks[name]["fix"]
        assert checks[name]["status"] == "fail" and all(w in text for w in words), checks[name]
    assert "pw" not in checks["redis"]["detail"] and "secret" not in checks["broker"]["detail"]


def test_redis_and_tampered_skills(tmp_path, emulator, home, capsys, monkeypatch):
    monkeypatch.delenv("DINGSKILL_APP_KEY", raising=False)
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        cfg = _config(
            tmp_path,
            emulator,
            home,
            storage={"type": "redis", "connection_string": server.url},
            skills={"home": str(tmp_path / "home")},
        )
        SkillHome(tmp_path / "home").install(next(home.parent.glob("dist/*.skill")))
        target = next((tmp_path / "home").rglob("skill.yaml"))
        target.write_text(target.read_text() + "\n# changed\n")
        code, checks = _doctor(capsys, "--config", str(cfg))
    finally:
        server.stop()
    assert code == 1
    assert checks["redis"]["status"] == "ok"
    assert checks["credentials"]["status"] == "fail"  # no DINGSKILL_APP_KEY
    assert (
        checks["skill files"]["status"] == "fail" and "re-install" in checks["skill files"]["fix"]
    )


@pytest.mark.parametrize("what", ["redis", "endpoint"])
def test_run_with_unreachable_address_says_so_in_one_line(tmp_path, emulator, home, what):
    import subprocess

    dead = free_port()
    if what == "redis":
        extra = {"storage": {"type": "redis", "connection_string": f"redis://127.0.0.1:{dead}/0"}}
        field = "storage.connection_string"
    else:
        extra = {
            "channels": {
                "enterprise_chat": {"mode": "stream", "endpoint": f"http://127.0.0.1:{dead}"}
            }
        }
        field = "channels.enterprise_chat.endpoint"
    cfg = _config(tmp_path, emulator, home, **extra)
    env = {"DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
    out = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"127.0.0.1:{dead}" in errors[0] and field in errors[0]
