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
    assert texts[-1].startswith("小周，您的年假申请") and "共 2 天" in texts[-1]
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


def test_worker_decides_duplicates_by_dedup_state_alone(stack):
    """No owners, no liveness checks: what is stored for a message id and whether the copy
    comes after an ended attempt (a retry, a replay; the broker's own redelivery is
    tests/broker/test_faults.py's kill -9) decide. `processing` + a first copy: another copy
    answers it, ack unanswered; `processing` + a retry or replay: answered; `replying` + a
    retry: the reply may have reached the user, not answered but dead-lettered ("uncertain")."""
    import asyncio

    import aio_pika
    import redis
    from dingskill.runtime.broker.amqp import HDR_ATTEMPT, HDR_CHANNEL, HDR_REPLAYED, shard_of
    from dingskill.runtime.broker.auth import HDR_REPLAY_TOKEN, MessageKeys
    from dingskill.runtime.config import load_config

    from .harness import APP

    emu = stack.emulator
    worker = stack.start("worker")
    cases = {  # stored state, headers of the copy, answered?
        "first-copy": ("processing", {}, False),
        "retry": ("processing", {HDR_ATTEMPT: 1}, True),
        "replay": ("processing", {HDR_REPLAYED: 1}, True),
        "uncertain": ("replying", {HDR_ATTEMPT: 1}, False),
    }
    r = redis.Redis(port=stack.redis.port)
    payloads = {}
    for name, (state, _, _) in cases.items():
        # not pushed (no gateway connected): the emulator keeps the payload and its webhook
        emu.send("工资条", msg_id=f"dedup-{name}", sender_id=f"staff-{name}")
        payloads[name] = emu.message(f"dedup-{name}")["payload"]
        r.set(f"dingskill:msg:dedup-{name}", state, px=60_000)

    async def publish():
        conn = await aio_pika.connect(stack.rabbit.url)
        try:
            ch = await conn.channel(publisher_confirms=True)
            ex = await ch.get_exchange(stack.queue, ensure=False)
            for name, (_, headers, _) in cases.items():
                data = payloads[name]
                body = json.dumps(data, ensure_ascii=False).encode()
                if HDR_REPLAYED in headers:  # what `dingskill dlq replay` adds
                    keys = MessageKeys.from_config(
                        load_config(environ={"DINGSKILL_APP_SECRET": APP[1]})
                    )
                    headers = {**headers, HDR_REPLAY_TOKEN: keys.mint_replay(data["msgId"], body)}
                await ex.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=data["msgId"],
                        headers={
                            HDR_CHANNEL: "stream",
                            HDR_ATTEMPT: 0,
                            **headers,
                            **stack.signed(body, data["msgId"]),  # as a gateway publishes it
                        },
                    ),
                    routing_key=str(shard_of(data["conversationId"], stack.broker["shards"])),
                    mandatory=True,
                )
        finally:
            await conn.close()

    asyncio.run(publish())

    def outcome(name):
        return worker.metric("dingskill_messages_total", f'outcome="{name}"')

    wait_until(
        lambda: outcome("in_progress") == 1 and outcome("uncertain") == 1 and outcome("ok") == 2,
        30,
        what="four copies decided",
    )
    for name, (_, _, answered) in cases.items():
        assert len(emu.replies(f"dedup-{name}")) == (1 if answered else 0), name
    assert worker.metric("dingskill_broker_retries_total") == 0  # none retried
    # the uncertain one is not dropped: it waits in the dead-letter queue for an operator,
    # and a replay answers it whatever its dedup entry says
    assert worker.metric("dingskill_broker_dead_letters_total", 'reason="uncertain"') == 1

    def cli(*args):
        return stack.cli("dlq", *args, config=worker.config_path)

    listed = cli("list", "--json")
    assert [json.loads(line)["reason"] for line in listed.stdout.splitlines()] == ["uncertain"]
    out = cli("replay", "dedup-uncertain")
    assert out.returncode == 0 and "replayed 1" in out.stdout, out.stdout + out.stderr
    wait_until(lambda: emu.replies("dedup-uncertain"), 30, what="replayed one answered")
    assert len(emu.replies("dedup-uncertain")) == 1
