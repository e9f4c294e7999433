"""Connection and topology: the names of every exchange and queue, declared the same way by
each service (declaring is idempotent), and the one-line error of an unreachable broker.

Topology for ``broker.queue = Q`` and ``broker.shards = S``:

- exchange ``Q`` (direct): routing key = shard number; queues ``Q.0`` .. ``Q.{S-1}`` (quorum,
  single active consumer: one worker at a time takes a shard, the others stand by), so the
  messages of one conversation (hashed to one shard) are handled in order;
- retry exchanges ``Q.retry.K`` (fanout) -> queues ``Q.retry.K`` with a fixed TTL each
  (back-off levels ``retry_delay_s * 2**K`` up to ``retry_max_delay_s``), dead-lettered back
  to exchange ``Q`` with the message's own routing key (its shard);
- ``Q.dlq``: messages that failed ``max_attempts`` times (or cannot be parsed);
- ``Q.audit``: audit records for the single ``audit-writer`` (single active consumer);
- ``Q.workers``: never receives messages; every worker consumes it so its consumer count is
  the number of live workers (the broker keeps it, not a heartbeat of ours)."""

from __future__ import annotations

import json
import logging
import ssl
import zlib
from dataclasses import dataclass

from ..config import redact_password

__all__ = [
    "BrokerUnavailable",
    "Topology",
    "connect",
    "shard_of",
    "HDR_ATTEMPT",
    "HDR_PUBLISHED_MS",
    "HDR_ERROR",
    "HDR_CHANNEL",
    "HDR_REPLAYED",
]

HDR_ATTEMPT = "x-dingskill-attempt"  # failed attempts so far
HDR_PUBLISHED_MS = "x-dingskill-published-ms"
HDR_ERROR = "x-dingskill-error"
HDR_CHANNEL = "x-dingskill-channel"
HDR_REPLAYED = "x-dingskill-replayed"  # published again by `dingskill dlq replay`


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached (the message names the URL, password redacted)."""


def shard_of(conversation_id: str, shards: int) -> int:
    """Stable shard of a conversation (the same in every gateway: CRC-32, not ``hash()``)."""
    return zlib.crc32(conversation_id.encode("utf-8")) % shards


@dataclass(frozen=True)
class Topology:
    queue: str = "dingskill"
    shards: int = 8
    max_attempts: int = 5
    retry_delay_s: float = 1.0
    retry_max_delay_s: float = 30.0

    @classmethod
    def from_config(cls, broker: dict) -> Topology:
        return cls(
            broker["queue"],
            int(broker["shards"]),
            int(broker["max_attempts"]),
            float(broker["retry_delay_s"]),
            float(broker["retry_max_delay_s"]),
        )

    @property
    def exchange(self) -> str:
        return self.queue

    def shard_queue(self, i: int) -> str:
        return f"{self.queue}.{i}"

    @property
    def shard_queues(self) -> list[str]:
        return [self.shard_queue(i) for i in range(self.shards)]

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    @property
    def audit_queue(self) -> str:
        return f"{self.queue}.audit"

    @property
    def presence_queue(self) -> str:
        return f"{self.queue}.workers"

    @property
    def retry_delays(self) -> list[float]:
        out, d = [], self.retry_delay_s
        while d < self.retry_max_delay_s and len(out) < 16:
            out.append(d)
            d *= 2
        return out + [self.retry_max_delay_s]

    def retry_exchange(self, failed_attempts: int) -> str:
        """Exchange of the back-off level for a message that failed ``failed_attempts`` times."""
        level = min(max(failed_attempts - 1, 0), len(self.retry_delays) - 1)
        return f"{self.queue}.retry.{level}"

    async def declare(self, channel) -> None:
        """Declare everything (same arguments in every service; safe to repeat)."""
        import aio_pika

        quorum = {"x-queue-type": "quorum"}
        ex = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for i, name in enumerate(self.shard_queues):
            q = await channel.declare_queue(
                name, durable=True, arguments={**quorum, "x-single-active-consumer": True}
            )
            await q.bind(ex, routing_key=str(i))
        for level, delay in enumerate(self.retry_delays):
            name = f"{self.queue}.retry.{level}"
            rex = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
            q = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    **quorum,
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": self.exchange,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            await q.bind(rex)
        await channel.declare_queue(self.dlq, durable=True, arguments=quorum)
        await channel.declare_queue(
            self.audit_queue,
            durable=True,
            arguments={**quorum, "x-single-active-consumer": True},
        )
        await channel.declare_queue(self.presence_queue, durable=True)


def _ssl_context(tls: dict) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.get("ca_path") or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.get("cert_path"):
        ctx.load_cert_chain(tls["cert_path"], tls.get("key_path"))
    if not tls.get("verify", True):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(broker: dict, name: str, robust: bool = True):
    """A (robust: reconnecting, restoring channels and consumers) connection to
    ``broker.url``; :class:`BrokerUnavailable` with the URL (password redacted) if the first
    attempt fails."""
    import asyncio

    import aio_pika

    url = broker["url"]
    kw: dict = {
        "timeout": broker.get("connect_timeout_s", 10),
        "client_properties": {"connection_name": name},
    }
    if url.startswith("amqps://"):
        kw["ssl_context"] = _ssl_context(broker.get("tls") or {})
    fn = aio_pika.connect_robust if robust else aio_pika.connect
    quiet = [logging.getLogger(n) for n in ("aiormq.connection", "aio_pika.robust_connection")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)  # the first failure is reported once, below
    try:
        return await fn(url, **kw)
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        raise BrokerUnavailable(
            f"cannot reach the broker at {redact_password(url)}: {_why(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - aiormq's protocol/auth errors
        raise BrokerUnavailable(
            f"cannot connect to the broker at {redact_password(url)}: {_why(exc)}"
        ) from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    for part in (text.splitlines() or [""])[:1]:
        return part[:200]
    return type(exc).__name__


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
