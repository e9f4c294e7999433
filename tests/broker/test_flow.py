"""Gateway -> RabbitMQ -> workers -> replies, end to end with real processes."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from .harness import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.redis]


def _text(body):
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text", "")


def test_messages_flow_once_in_context_and_audited(stack):
    emu = stack.emulator
    writer = stack.start("audit-writer")
    workers = [stack.start("worker"), stack.start("worker")]
    gw = stack.start("gateway")
    emu.wait_connections(1)
    turns = ["我想请假", "年假", "明天", "两天"]
    texts = []
    for t in turns:  # multi-turn context lives in Redis, whichever worker answers
        i = emu.send(t, sender_id="staff-21", sender_nick="小周")
        texts.append(_text(emu.wait_reply(i, timeout=20)))
    assert texts[-1].startswith("已为小周提交年假申请") and "共 2 天" in texts[-1]
    ids = [emu.send(f"工资条 {n}", sender_id=f"user-{n % 7}") for n in range(40)]
    wait_until(lambda: all(emu.messages[i].replies for i in ids), 60, what="all answered")
    assert all(len(emu.messages[i].replies) == 1 for i in ids)
    assert all(emu.messages[i].acked for i in ids)
    assert gw.metric("dingskill_broker_published_total") >= 44
    assert sum(w.metric("dingskill_broker_deliveries_total") for w in workers) >= 44
    for svc in (gw, writer, *workers):
        ready = httpx.get(f"{svc.url}/readyz", timeout=5).json()
        assert ready["ready"] and ready["checks"]["broker"], ready
    # the audit-writer holds one linear chain with a record per message
    audit = stack.dir / "audit" / "messages.jsonl"
    wait_until(
        lambda: audit.exists() and sum(1 for _ in audit.open()) >= 44, 30, what="audit records"
    )
    for w in workers:
        w.stop()
    writer.stop()
    out = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", "audit", "verify", str(audit)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr
    records = [json.loads(line) for line in audit.open()]
    assert len(records) >= 44
