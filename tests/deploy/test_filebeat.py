"""The Filebeat configuration parses, reads the files the runtime's ECS logging writes (as
deploy/config.yaml configures it), and the log lines are ECS documents Filebeat can expand."""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path

import yaml
from dingskill.runtime.config import load_config
from dingskill.runtime.logs import log_path, setup_logging
from dingskill.security.redact import Redactor

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_filebeat_ships_the_runtime_log_path():
    beat = yaml.safe_load((DEPLOY / "filebeat/filebeat.yml").read_text())
    cfg = load_config(
        DEPLOY / "config.yaml", environ={"DINGSKILL_APP_KEY": "k", "DINGSKILL_APP_SECRET": "s"}
    )
    assert cfg.get("logging.format") == "ecs"
    written = log_path(cfg.get("logging.path"))
    (inp,) = beat["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"]
    assert any(fnmatch.fnmatch(written, pattern) for pattern in inp["paths"]), (written, inp)
    (parser,) = inp["parsers"]
    assert parser["ndjson"]["expand_keys"] is True and parser["ndjson"]["target"] == ""
    assert beat["output.elasticsearch"]["hosts"]
    # the compose file runs Filebeat with this configuration over the runtime's volume
    compose = yaml.safe_load((DEPLOY / "compose/docker-compose.yml").read_text())
    fb = compose["services"]["filebeat"]
    assert "../filebeat/filebeat.yml:/usr/share/filebeat/filebeat.yml:ro" in fb["volumes"]
    for service in ("gateway", "worker", "audit-writer"):  # every dingskill service logs there
        runtime_volume = next(v for v in compose["services"][service]["volumes"])
        volume, mount = runtime_volume.split(":")[:2]
        assert f"{volume}:{mount}:ro" in fb["volumes"] and written.startswith(mount + "/")


def test_ecs_log_lines(tmp_path):
    path = tmp_path / "logs" / "runtime-{hostname}.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", Redactor(["s3cret"]), str(path), "ecs", "bot-a")
        log = logging.getLogger("dingskill.runtime")
        log.info("message handled", extra={"msg_id": "m-1", "outcome": "ok", "intent": "greet"})
        try:
            raise ValueError("boom s3cret")
        except ValueError:
            log.exception("skill failed", extra={"action": "skill.call"})
        for h in root.handlers:
            h.flush()
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    (written,) = list((tmp_path / "logs").glob("runtime-*.log"))
    first, second = (json.loads(line) for line in written.read_text().splitlines())
    for doc in (first, second):
        assert {"@timestamp", "log.level", "message", "ecs.version", "service.name"} <= set(doc)
        assert doc["service.name"] == "bot-a" and doc["@timestamp"].endswith("Z")
    assert first["trace.id"] == "m-1" and first["event.outcome"] == "ok"
    assert first["dingskill.intent"] == "greet" and first["log.level"] == "info"
    assert second["error.type"] == "ValueError" and "s3cret" not in json.dumps(second)
    assert second["event.action"] == "skill.call" and "Traceback" in second["error.stack_trace"]
