"""The broker is not a trust boundary: with a real rabbitmq-server, messages that anything
on the vhost can publish straight to a shard queue are dead-lettered with the reason and never
acted on (no signature, a tampered body, a forged or reused replay header, a session webhook
on a foreign host), and the `dlq` commands need the admin role and are audited."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dingskill.runtime.broker.amqp import HDR_ATTEMPT, HDR_CHANNEL, HDR_REPLAYED, shard_of
from dingskill.runtime.broker.auth import HDR_REPLAY_TOKEN, MessageKeys
from dingskill.runtime.config import load_config
from dingskill.security.audit_chain import AuditChain

from .harness import APP, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.redis]

ADMIN_STAFF = "boss-1"


class _Foreign:
    """An HTTP server on loopback standing for an attacker's host: counts what reaches it."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/robot/sendBySession"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _publish(stack, items: list[tuple[bytes, str, str, dict]]) -> None:
    """Publish (body, msg id, conversation, headers) straight to the shard queues, as any
    client of the vhost can."""
    import aio_pika

    async def go():
        conn = await aio_pika.connect(stack.rabbit.url)
        try:
            ch = await conn.channel(publisher_confirms=True)
            ex = await ch.get_exchange(stack.queue, ensure=False)
            for body, msg_id, conv, headers in items:
                await ex.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=msg_id,
                        headers={HDR_CHANNEL: "stream", HDR_ATTEMPT: 0, **headers},
                    ),
                    routing_key=str(shard_of(conv, stack.broker["shards"])),
                    mandatory=True,
                )
        finally:
            await conn.close()

    asyncio.run(go())


def _payload(stack, text: str, msg_id: str, sender: str, webhook: str | None = None):
    emu = stack.emulator
    emu.send(text, msg_id=msg_id, sender_id=sender)  # no gateway: kept, not pushed
    data = dict(emu.message(msg_id)["payload"])
    data["senderStaffId"] = sender
    if webhook:
        data["sessionWebhook"] = webhook
    return data, json.dumps(data, ensure_ascii=False).encode()


def _dead(stack, config) -> dict[str, str]:
    out = stack.cli("dlq", "list", "--json", config=config)
    assert out.returncode == 0, out.stdout + out.stderr
    return {json.loads(x)["id"]: json.loads(x)["reason"] for x in out.stdout.splitlines()}


def test_forged_tampered_replayed_and_foreign_messages_are_dead_lettered(stack, skills_home):
    from dingskill.security.rbac import AccessControl

    AccessControl(skills_home / "access.json").set_staff_role(ADMIN_STAFF, "admin")
    emu = stack.emulator
    worker = stack.start("worker")
    keys = MessageKeys.from_config(load_config(environ={"DINGSKILL_APP_SECRET": APP[1]}))
    with _Foreign() as foreign:
        # 1. /rollback as the admin's staff id, published without a gateway's signature,
        #    its session webhook on the attacker's host
        rb, rb_body = _payload(stack, "/rollback com.corp.hr", "forged-rollback", ADMIN_STAFF)
        rb_body = rb_body.replace(rb["sessionWebhook"].encode(), foreign.url.encode())
        # 2. a gateway-signed message whose body was changed afterwards
        tm, tm_body = _payload(stack, "工资条", "tampered", "staff-t")
        tm_sig = keys.sign(tm_body, tm["msgId"], "stream")
        tm_body = tm_body.replace("工资条".encode(), b"/rollback com.corp.hr")
        # 3. signed (a platform message), but its session webhook is a foreign host
        fw, fw_body = _payload(stack, "工资条", "foreign-webhook", "staff-f", foreign.url)
        # 4. a signed message with a forged replay header (no token / a made-up one)
        rp, rp_body = _payload(stack, "工资条", "forged-replay", "staff-r")
        rq, rq_body = _payload(stack, "工资条", "forged-token", "staff-q")
        # 5. a genuine one, for contrast
        ok, ok_body = _payload(stack, "工资条", "genuine", "staff-g")
        _publish(
            stack,
            [
                (rb_body, rb["msgId"], rb["conversationId"], {}),
                (tm_body, tm["msgId"], tm["conversationId"], tm_sig),
                (fw_body, fw["msgId"], fw["conversationId"], stack.signed(fw_body, fw["msgId"])),
                (
                    rp_body,
                    rp["msgId"],
                    rp["conversationId"],
                    {**stack.signed(rp_body, rp["msgId"]), HDR_REPLAYED: 1},
                ),
                (
                    rq_body,
                    rq["msgId"],
                    rq["conversationId"],
                    {
                        **stack.signed(rq_body, rq["msgId"]),
                        HDR_REPLAYED: 1,
                        HDR_REPLAY_TOKEN: "app.1.00.forged",
                    },
                ),
                (ok_body, ok["msgId"], ok["conversationId"], stack.signed(ok_body, ok["msgId"])),
            ],
        )
        emu.wait_reply("genuine", timeout=30)
        want = {
            "forged-rollback": "unauthenticated",
            "tampered": "tampered",
            "foreign-webhook": "webhook-host",
            "forged-replay": "replay-refused",
            "forged-token": "replay-refused",
        }
        wait_until(lambda: _dead(stack, worker.config_path) == want, 30, 0.3, what="5 refused")
        assert foreign.hits == []  # the foreign session webhook was never called
    for msg_id in want:
        assert emu.replies(msg_id) == [], msg_id  # never acted on, never answered
    assert worker.metric("dingskill_broker_dead_letters_total", 'reason="unauthenticated"') == 1
    # nothing was rolled back or even attempted
    admin_log = stack.dir / "audit" / "admin.jsonl"
    ops = [r["operation"] for r in AuditChain(admin_log).records()] if admin_log.exists() else []
    assert not [o for o in ops if "rollback" in o]

    # a replay from the DLQ carries a token and is answered once; a copy of it is refused
    tok = keys.mint_replay(ok["msgId"], ok_body)
    copy = {**stack.signed(ok_body, ok["msgId"]), HDR_REPLAYED: 1, HDR_REPLAY_TOKEN: tok}
    _publish(stack, [(ok_body, ok["msgId"], ok["conversationId"], copy)])
    wait_until(lambda: len(emu.replies("genuine")) == 2, 30, what="replayed once")
    _publish(stack, [(ok_body, ok["msgId"], ok["conversationId"], copy)])
    wait_until(lambda: "genuine" in _dead(stack, worker.config_path), 30, 0.3, what="reuse refused")
    assert len(emu.replies("genuine")) == 2


def test_dlq_commands_need_the_admin_role_and_are_audited(stack, skills_home):
    from dingskill.security.rbac import AccessControl

    worker = stack.start("worker")
    cfg = worker.config_path
    for token, why in ((None, "DINGSKILL_TOKEN"), ("dsk_nope_nope", "DINGSKILL_TOKEN")):
        out = stack.cli("dlq", "list", config=cfg, token=token)
        assert out.returncode == 3 and "admin role" in out.stderr and why in out.stderr
    viewer = AccessControl(skills_home / "access.json").create_token("dlq-viewer", "viewer")
    for action in ("list", "replay", "purge"):
        out = stack.cli("dlq", action, config=cfg, token=viewer)
        assert out.returncode == 3 and "lack broker.dlq" in out.stderr, out.stderr
    assert stack.cli("dlq", "purge", config=cfg).returncode == 0  # the admin may
    records = list(AuditChain(stack.dir / "audit" / "admin.jsonl").records())
    denied = [r for r in records if r["operation"] == "broker.dlq" and r["result"] == "denied"]
    assert len(denied) == 5
    done = [r for r in records if r["operation"].startswith("broker.dlq.")]
    assert [(r["operation"], r["result"]) for r in done] == [("broker.dlq.purge", "ok")]
    assert done[0]["actor"].startswith("token:")
