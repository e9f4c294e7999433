"""Several `dingskill run` replicas sharing Redis: context, dedup, rate limits, and a replica
killed with SIGKILL mid-load."""

from __future__ import annotations

import pytest

from .harness import wait_until

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
    assert texts[-1].startswith("已为小周提交年假申请") and "共 2 天" in texts[-1]


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
@pytest.mark.emulator_resend
def test_sigkill_mid_load_loses_nothing_and_answers_once(two_replicas, emulator):
    a, b = two_replicas
    emulator.max_attempts = 1000  # the platform keeps redelivering; the test bounds time instead
    ids = [emulator.send(f"工资条 {i}", sender_id=f"user-{i % 50}") for i in range(300)]
    wait_until(
        lambda: sum(1 for i in ids if emulator.messages[i].replies) >= 60, 30, what="some answered"
    )
    kill_ms = int(__import__("time").time() * 1000)
    a.stop("kill")
    wait_until(
        lambda: all(emulator.messages[i].replies for i in ids),
        120,
        what="all answered by the survivor",
    )
    # at least once: only a reply already on its way from the killed replica may repeat
    twice = [emulator.messages[i] for i in ids if len(emulator.messages[i].replies) > 1]
    assert all(m.replies[0]["at_ms"] <= kill_ms + 3000 for m in twice)
    assert len(twice) < len(ids) // 3  # the kill cuts off the replies then in flight, no more
    assert b.metric("dingskill_takeovers_total") >= 1


def _audit(rt):
    from dingskill.security.audit_chain import AuditChain

    path = rt.config_path.parent / "audit" / "messages.jsonl"
    return list(AuditChain(path).records()) if path.exists() else []
