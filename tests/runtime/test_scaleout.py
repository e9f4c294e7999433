"""Several `dingskill run` replicas sharing Redis: context, dedup and rate limits.

Fail-over of a killed process is the broker's job (tests/broker/test_faults.py): DingTalk
pushes a robot message once, so no replica can take over a message another one had taken."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.redis]


def _text(body):
    return body.get("text", {}).get("content") or body.get("markdown", {}).get("text", "")


@pytest.fixture
def two_replicas(home, emulator, start_runtime, redis_server):
    storage = {"type": "redis", "connection_string": redis_server.url}
    extra = {}
    a = start_runtime(home, storage=storage, extra=extra)
    b = start_runtime(home, storage=storage, extra=extra)
    emulator.wait_connections(2)
    return a, b


def test_multi_turn_continues_across_replicas(two_replicas, emulator):
    turns = ["我想请假", "年假", "明天", "两天"]
    ids, texts = [], []
    for t in turns:
        i = emulator.send(t, sender_id="staff-21", sender_nick="小周")
        texts.append(_text(emulator.wait_reply(i)))
        ids.append(i)
    conns = [emulator.messages[i].conn_id for i in ids]
    assert len(set(conns)) == 2  # round robin: consecutive turns on different replicas
    assert texts[-1].startswith("小周，您的年假申请") and "共 2 天" in texts[-1]


def test_dedup_and_rate_limits_are_shared(two_replicas, emulator):
    emulator.wait_reply(emulator.send("工资条", msg_id="dup-1"))
    emulator.send("工资条", msg_id="dup-1")  # redelivered: lands on the other replica
    emulator.wait_for(lambda: emulator.messages["dup-1"].acked)
    assert emulator.counters["replies"] == 1
    a, b = two_replicas
    ids = [emulator.send("工资条", sender_id="flood-1") for _ in range(40)]
    texts = [_text(emulator.wait_reply(i)) for i in ids]
    limited = sum("有点快" in t for t in texts)
    # 30/min with a burst of 15 shared by both replicas (+0.5/s refill): most of 40 are refused
    assert 10 <= limited <= 25, limited
    assert a.metric("dingskill_rate_limited_total", 'scope="user"') > 0
    assert b.metric("dingskill_rate_limited_total", 'scope="user"') > 0


@pytest.mark.slow
def _audit(rt):
    from dingskill.security.audit_chain import AuditChain

    path = rt.config_path.parent / "audit" / "messages.jsonl"
    return list(AuditChain(path).records()) if path.exists() else []
