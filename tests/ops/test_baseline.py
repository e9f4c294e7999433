"""Behaviour baseline per actor, fed by the real audit log: ordinary traffic learns the
baseline without alerts; a scripted burst of admin operations or messages by one actor
raises one alert (admin audit record, metric, webhook), others stay quiet."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dingskill.runtime.audit import AuditLog
from dingskill.runtime.config import load_config
from dingskill.runtime.metrics import Metrics
from dingskill.security.baseline import BaselineConfig, BehaviourBaseline


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def hook():
    got: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alert", got
    server.shutdown()
    server.server_close()


def test_scripted_burst_departs_from_the_baseline(tmp_path, hook):
    url, posted = hook
    clock = Clock()
    audit = AuditLog(str(tmp_path / "audit" / "messages.jsonl"), alert_webhook=url)
    metrics = Metrics()
    audit.baseline = BehaviourBaseline(BaselineConfig(window_s=60), clock=clock)
    audit.on_baseline_alert = lambda a: metrics.baseline_alerts.labels(a.kind).inc()

    def at(t: float) -> int:
        clock.t = 1_700_000_000.0 + t
        return int(clock.t * 1000)

    # an hour of ordinary work: two admins make a few operations, users a few messages
    import unittest.mock as mock

    with mock.patch("time.time", clock):
        for minute in range(60):
            at(minute * 60 + 1)
            for user in ("u1", "u2", "u3"):
                for _ in range(3):
                    audit.record(user, "skill", "message", "ok")
            if minute % 5 == 0:
                audit.admin("ops-alice", "skills", "skills.list", "ok")
                audit.admin("ops-bob", "audit", "audit.read", "ok")
        assert audit.baseline.alerts == []
        # a scripted burst: ops-bob exports the audit log 40 times in one minute
        at(60 * 61 + 1)
        for _ in range(40):
            audit.admin("ops-bob", "audit", "audit.export", "ok")
        # and a brand-new sender floods messages
        for _ in range(80):
            audit.record("intruder", "skill", "message", "ok")
        # ordinary users in the same minute stay quiet
        for user in ("u1", "u2"):
            for _ in range(4):
                audit.record(user, "skill", "message", "ok")
    alerts = {(a.actor, a.kind): a for a in audit.baseline.alerts}
    assert set(alerts) == {("ops-bob", "admin"), ("intruder", "message")}
    bob = alerts[("ops-bob", "admin")]
    assert bob.count == int(bob.threshold) + 1 and bob.mean < 1  # first event over the line
    records = list(audit.admin_chain.records())
    flagged = [r for r in records if r.get("operation") == "baseline.alert"]
    assert {r["object"] for r in flagged} == {"ops-bob", "intruder"}
    assert metrics.baseline_alerts.labels("admin")._value.get() == 1
    assert metrics.baseline_alerts.labels("message")._value.get() == 1
    texts = [p["alert"] for p in posted if "behaviour baseline" in p["alert"]]
    assert len(texts) == 2 and any("ops-bob" in t for t in texts)


def test_alerts_raised_on_the_message_path_are_written_off_the_event_loop(tmp_path, monkeypatch):
    """With the background writer running, a departure found while a message is recorded
    is chained by the writer (no fsync on the event loop), in order and verifiable."""
    import asyncio

    from dingskill.security.audit_chain import verify_chain

    audit = AuditLog(str(tmp_path / "audit" / "messages.jsonl"))
    audit.baseline = BehaviourBaseline(BaselineConfig(window_s=60), clock=lambda: 1.0)
    on_loop: list[bool] = []
    real = audit.admin_chain.append_many

    def spy(records):
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real(records)

    monkeypatch.setattr(audit.admin_chain, "append_many", spy)

    async def main():
        await audit.start()
        for _ in range(200):
            audit.record("flooder", "skill", "message", "ok")
        await audit.stop()

    asyncio.run(main())
    flagged = [r for r in audit.admin_chain.records() if r["operation"] == "baseline.alert"]
    assert [r["object"] for r in flagged] == ["flooder"]
    assert on_loop == [False]  # one batch, written in a worker thread
    assert verify_chain(audit.admin_chain.path, audit.admin_chain.keyring) == []


def test_baseline_config_is_validated():
    cfg = load_config(None, environ={}, overrides={"baseline": {"window_s": 30}})
    assert cfg.get("baseline.window_s") == 30 and cfg.get("baseline.enabled") is True
    with pytest.raises(ValueError, match="baseline: window_s must be > 0"):
        load_config(None, environ={}, overrides={"baseline": {"window_s": 0}})


def test_the_population_kept_between_rolls_is_the_population_scanned():
    """The population's mean and std are kept until a track rolls a window: on a random
    event stream they are always what a full scan of the actors gives."""
    import random

    rnd = random.Random(7)
    b = BehaviourBaseline(BaselineConfig(window_s=60, warmup=3))
    at = 0.0
    for _ in range(3000):
        at += rnd.random() * 2
        actor, kind = f"u{rnd.randrange(30)}", rnd.choice(["message", "login"])
        b.observe(actor, kind, at=at)
        for k in ("message", "login"):
            assert b._population(k) == b._population_now(k)
