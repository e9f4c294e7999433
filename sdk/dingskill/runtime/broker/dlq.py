"""The dead-letter queue ``Q.dlq``: list, show, replay (back to the message's shard, attempts
reset) and purge. Reading takes the messages without acknowledging them and closes the
channel, so the broker keeps every message that was not replayed or purged."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from .amqp import HDR_ATTEMPT, HDR_ERROR, HDR_REPLAYED, Topology, connect, shard_of

__all__ = ["DeadLetter", "dlq_list", "dlq_replay", "dlq_purge"]


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


async def dlq_replay(broker: dict, msg_id: str | None = None) -> list[str]:
    """Publish the dead letter ``msg_id`` (all when None) back to its shard with its attempt
    count reset; returns the ids replayed."""
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
            await asyncio.wait_for(
                ex.publish(
                    aio_pika.Message(
                        m.body,
                        content_type=m.content_type or "application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=m.message_id,
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
