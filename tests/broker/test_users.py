"""deploy/rabbitmq/users.sh against a real rabbitmq-server: each service's own user can do its
job (a message flows gateway -> worker -> reply, the operator lists the DLQ) and nothing
more (the gateway cannot consume a shard queue or publish around the exchange, the worker
cannot read the audit queue, the gateway's user_id cannot be forged by another login)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from .harness import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {
    "RABBITMQ_GATEWAY_PASSWORD": "gw-" + uuid.uuid4().hex,
    "RABBITMQ_WORKER_PASSWORD": "wk-" + uuid.uuid4().hex,
    "RABBITMQ_AUDIT_PASSWORD": "au-" + uuid.uuid4().hex,
    "RABBITMQ_OPS_PASSWORD": "op-" + uuid.uuid4().hex,
}


def _url(rabbit, user: str, vhost: str) -> str:
    key = {"gateway": "GATEWAY", "worker": "WORKER", "audit": "AUDIT", "ops": "OPS"}[user]
    return (
        f"amqp://dingskill-{user}:{PASSWORDS[f'RABBITMQ_{key}_PASSWORD']}@127.0.0.1:"
        f"{rabbit.port}/{vhost}"
    )


def _refused(url: str, action) -> str:
    """The broker's refusal of ``action(channel)`` done as the login of ``url``."""
    import aio_pika

    async def go():
        conn = await aio_pika.connect(url)
        try:
            ch = await conn.channel(publisher_confirms=True)
            try:
                await action(ch)
            except Exception as exc:  # noqa: BLE001 - the broker's channel error
                return str(exc)
            return ""
        finally:
            await conn.close()

    return asyncio.run(go())


def test_per_service_users_have_least_privilege(stack):
    rabbit, vhost = stack.rabbit, f"v{uuid.uuid4().hex[:6]}"
    assert rabbit.ctl("add_vhost", vhost).returncode == 0
    assert rabbit.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
    env = {
        **rabbit.env(),
        **PASSWORDS,
        "RABBITMQCTL": f"{rabbit.bin / 'rabbitmqctl'} -n {rabbit.name}",
        "DINGSKILL_QUEUE": stack.queue,
        "RABBITMQ_VHOST": vhost,
        "RABBITMQ_KEEP_GUEST": "1",  # the session's other tests log in as guest
    }
    out = subprocess.run(
        ["sh", str(ROOT / "deploy" / "rabbitmq" / "users.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ready") == 4

    # each service as its own user: a message flows end to end
    emu = stack.emulator
    broker = {**stack.broker}
    stack.start("worker", broker={**broker, "url": _url(rabbit, "worker", vhost)})
    stack.start("gateway", broker={**broker, "url": _url(rabbit, "gateway", vhost)})
    stack.start("audit-writer", broker={**broker, "url": _url(rabbit, "audit", vhost)})
    emu.wait_connections(1)
    msg = emu.send("工资条", sender_id="least-privilege")
    emu.wait_reply(msg, timeout=30)
    listed = stack.cli(
        "dlq",
        "list",
        config=_write(stack, {**broker, "url": _url(rabbit, "ops", vhost)}),
    )
    assert listed.returncode == 0 and "0 dead letter(s)" in listed.stdout, listed.stderr

    import aio_pika

    q = stack.queue

    async def consume_shard(ch):
        queue = await ch.declare_queue(f"{q}.0", passive=True)
        await queue.get(fail=False)

    async def publish_default(ch):
        await ch.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=f"{q}.0")

    async def read_audit(ch):
        queue = await ch.declare_queue(f"{q}.audit", passive=True)
        await queue.get(fail=False)

    async def forge_user_id(ch):  # another login claiming to be the gateway
        ex = await ch.get_exchange(q, ensure=False)
        await ex.publish(aio_pika.Message(b"{}", user_id="dingskill-gateway"), routing_key="0")

    gateway, worker = _url(rabbit, "gateway", vhost), _url(rabbit, "worker", vhost)
    assert "ACCESS_REFUSED" in _refused(gateway, consume_shard)
    assert "ACCESS_REFUSED" in _refused(gateway, publish_default)
    assert "ACCESS_REFUSED" in _refused(worker, read_audit)
    assert "PRECONDITION_FAILED" in _refused(_url(rabbit, "ops", vhost), forge_user_id)
    wait_until(lambda: emu.messages[msg].replies, 5, what="answered once")
    assert len(emu.messages[msg].replies) == 1


def _write(stack, broker: dict) -> Path:
    import json

    cfg = stack.config(broker=broker)
    path = stack.dir / f"ops-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(cfg))
    return path
