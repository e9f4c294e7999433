"""The dead-letter queue ``Q.dlq``: list, show, replay (back to the message's shard, attempts
reset) and purge. Reading takes the messages without acknowledging them and closes the
channel, so the broker keeps every message that was not replayed or purged."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from .amqp import HDR_ATTEMPT, HDR_ERROR, HDR_REPLAYED, Topology, connect, login_of, shard_of
from .auth import HDR_REPLAY_TOKEN, MessageKeys

__all__ = ["DeadLetter", "DlqRefused", "dlq_list", "dlq_replay", "dlq_purge", "run_dlq"]


class DlqRefused(PermissionError):
    """The caller may not touch the dead-letter queue (no admin token)."""


@dataclass
class DeadLetter:
    id: str
    attempts: int
    reason: str
    error: str
    dead_ms: int
    conversation: str
    sender: str
    text: str
    body: dict

    def summary(self) -> dict:
        return {
            "id": self.id,
            "attempts": self.attempts,
            "reason": self.reason,
            "error": self.error,
            "dead_ms": self.dead_ms,
            "conversation": self.conversation,
            "text": self.text[:80],
        }


def _letter(msg) -> DeadLetter:
    h = msg.headers or {}
    try:
        body = json.loads(msg.body)
    except ValueError:
        body = {"raw": msg.body.decode("utf-8", "replace")}
    text = ""
    if isinstance(body, dict):
        text = str((body.get("text") or {}).get("content") or "")
    return DeadLetter(
        id=msg.message_id or "",
        attempts=int(h.get(HDR_ATTEMPT) or 0),
        reason=str(h.get("x-dingskill-dead-reason") or ""),
        error=str(h.get(HDR_ERROR) or ""),
        dead_ms=int(h.get("x-dingskill-dead-ms") or 0),
        conversation=str(body.get("conversationId", "")) if isinstance(body, dict) else "",
        sender=str(body.get("senderStaffId") or body.get("senderId") or "")
        if isinstance(body, dict)
        else "",
        text=text,
        body=body if isinstance(body, dict) else {},
    )


async def _take_all(broker: dict):
    conn = await connect(broker, "dingskill-dlq", robust=False)
    topo = Topology.from_config(broker)
    ch = await conn.channel(publisher_confirms=True)
    await topo.declare(ch)
    q = await ch.get_queue(topo.dlq, ensure=False)
    msgs = []
    while True:
        m = await q.get(no_ack=False, fail=False)
        if m is None:
            break
        msgs.append(m)
    return conn, ch, topo, msgs


async def dlq_list(broker: dict) -> list[DeadLetter]:
    conn, _, _, msgs = await _take_all(broker)
    try:
        return [_letter(m) for m in msgs]
    finally:
        await conn.close()  # unacknowledged: all stay in the queue


async def dlq_replay(broker: dict, keys: MessageKeys, msg_id: str | None = None) -> list[str]:
    """Publish the dead letter ``msg_id`` (all when None) back to its shard with its attempt
    count reset and a replay token (``keys``) the worker honours once; returns the ids
    replayed. The message keeps its gateway signature: a replay never vouches for a message
    that was not authenticated in the first place."""
    import aio_pika

    conn, ch, topo, msgs = await _take_all(broker)
    done = []
    try:
        ex = await ch.get_exchange(topo.exchange, ensure=False)
        for m in msgs:
            if msg_id is not None and m.message_id != msg_id:
                continue
            letter = _letter(m)
            headers = {
                k: v
                for k, v in (m.headers or {}).items()
                if not k.startswith(
                    ("x-dingskill-dead", "x-death", "x-first-death", "x-last-death")
                )
            }
            headers[HDR_ATTEMPT] = 0
            headers[HDR_REPLAYED] = 1
            headers[HDR_REPLAY_TOKEN] = keys.mint_replay(m.message_id or "", m.body)
            await asyncio.wait_for(
                ex.publish(
                    aio_pika.Message(
                        m.body,
                        content_type=m.content_type or "application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=m.message_id,
                        user_id=login_of(broker["url"]),
                        headers=headers,
                    ),
                    routing_key=str(shard_of(letter.conversation, topo.shards)),
                    mandatory=True,
                ),
                float(broker["confirm_timeout_s"]),
            )
            await m.ack()  # confirmed in its shard: out of the dead-letter queue
            done.append(letter.id)
    finally:
        await conn.close()
    return done


async def dlq_purge(broker: dict) -> int:
    conn = await connect(broker, "dingskill-dlq", robust=False)
    try:
        topo = Topology.from_config(broker)
        ch = await conn.channel()
        await topo.declare(ch)
        q = await ch.get_queue(topo.dlq, ensure=False)
        result = await q.purge()
        return int(getattr(result, "message_count", 0) or 0)
    finally:
        await conn.close()


def run_dlq(config, token: str | None, action: str, msg_id: str | None = None):
    """``dingskill dlq ACTION`` for the holder of ``token``: it must carry ``broker.dlq``
    (the admin role); the decision and the action are written to the admin audit chain
    (``admin.jsonl`` beside ``audit.path``). ``list``/``show``: dead letters; ``replay``: the
    ids replayed; ``purge``: how many were deleted."""
    from pathlib import Path

    from ...security.audit_chain import AuditChain
    from ...security.crypto import Keyring
    from ...security.rbac import AccessControl
    from .auth import MessageKeys

    chain = AuditChain(Path(config.get("audit.path")).with_name("admin.jsonl"), Keyring.from_env())
    home = Path(config.get("skills.home"))
    acl = AccessControl(
        home / "access.json", roles=config.get("security.roles") or None, audit=chain.append
    )
    subject = acl.authenticate(token)
    obj = f"dlq:{msg_id}" if msg_id else "dlq"
    decision = acl.authorize(subject, "broker.dlq", obj=obj)
    if not decision.allowed:
        raise DlqRefused(
            f"dlq {action} needs the admin role (permission broker.dlq): "
            + ("pass --token or set DINGSKILL_TOKEN" if not subject else decision.reason)
        )
    broker = config["broker"]
    result: object
    if action in ("list", "show"):
        letters = asyncio.run(dlq_list(broker))
        result = [d for d in letters if action == "list" or d.id == msg_id]
        detail = {"n": len(result)}
    elif action == "replay":
        result = asyncio.run(dlq_replay(broker, MessageKeys.from_config(config), msg_id))
        detail = {"ids": result[:100], "n": len(result)}
    elif action == "purge":
        result = asyncio.run(dlq_purge(broker))
        detail = {"n": result}
    else:
        raise ValueError(f"unknown dlq action {action!r}")
    chain.append(
        {
            "ts_ms": int(time.time() * 1000),
            "actor": decision.subject,
            "object": obj,
            "operation": f"broker.dlq.{action}",
            "result": "ok",
            **detail,
        }
    )
    return result
