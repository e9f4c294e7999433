"""``dingskill worker``: consumes the shard queues with manual acks and a bounded prefetch and
hands each message to the same :class:`~dingskill.runtime.pipeline.Pipeline` that
``dingskill run`` builds (the worker *is* a :class:`~dingskill.runtime.app.Runtime` without a
platform channel), replies through the session webhook, then acks.

Order and isolation: every shard queue has a single active consumer, and inside a worker the
messages of one conversation run one after another while other conversations run beside
them, so a slow skill holds up only its own conversation. Workers balance the shards among
themselves: the number of live workers is the consumer count of ``Q.workers``; a worker
delivering more than its share hands shards over (it stops starting their messages, lets the
started ones finish, then closes that shard's channel: the broker gives the not-started
messages back, first in line, to the next consumer, and the worker re-subscribes last).

Failures: an attempt that raises (storage down, reply refused) goes to a back-off queue
(TTL, dead-lettered back to its shard) until ``broker.max_attempts``, then to ``Q.dlq``. A
reply no attempt can deliver (the webhook gone and the skill without ``qyapi_robot_sendmsg``,
a body the webhook refuses, an AI card left unfinished) is audited, then dead-lettered at
once with reason ``undeliverable`` (:class:`~dingskill.runtime.delivery.Undelivered`).

Duplicates (message-id dedup in Redis, no coordination of our own): a copy the broker gives
back (``redelivered``: only after the consumer holding it closed its channel), a retry or a
replay comes after its previous attempt ended, so a ``processing`` entry is that attempt's
leftover and the message is handled again; ``replying`` means the reply may have reached the
user: not answered again but dead-lettered with reason ``uncertain`` (``outcome="uncertain"``),
where an operator sees it and can replay it (a replay always answers); ``done``: acked
without a reply. A
second copy published for the same message (a platform resend the gateway published again)
arriving while the first is ``processing`` is acked: the first copy answers it."""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import logging
import math
import time

from ..app import Runtime, openapi_options
from ..channels.parse import FrameError, parse_robot_message
from ..channels.stream import DEFAULT_ENDPOINT
from ..config import RuntimeConfig
from ..delivery import Delivery
from ..pipeline import InProgress, ReplyUncertain
from ..proactive import RobotSender
from ..replies import CardStreamer
from .amqp import (
    HDR_ATTEMPT,
    HDR_CHANNEL,
    HDR_ERROR,
    HDR_REPLAYED,
    Topology,
    connect,
    login_of,
)
from .auth import HDR_REPLAY_TOKEN, MessageKeys, WebhookHosts
from .metrics import BrokerMetrics
from .service import run_until_signal

__all__ = ["Worker", "ReplyFailed"]

log = logging.getLogger("dingskill.worker")


class ReplyFailed(RuntimeError):
    """The session webhook refused the reply after its retries: try the message again later."""


class _Acks:
    """The acks of one shard channel. A finished message is acked at the next turn of the
    loop together with the other messages finished by then: the run of finished messages at
    the front (in delivery order) goes as one ``multiple`` ack of its last delivery tag,
    which covers every earlier tag; finished messages behind one still running are acked
    one by one (never covered by a ``multiple`` ack, so a running or failed message stays
    unacked). Messages held back (a paused shard) are never started, so never acked: their
    tags come after every started one. Delivery tags restart on a new channel (a
    reconnection): what was started on the old one is forgotten (the broker gives it back).

    The acks leave one after another, each once the previous one is written: the client
    queues frames in a short queue where a frame sent later can overtake one waiting for room,
    and a single ack arriving after a ``multiple`` ack that covered it would be an unknown
    delivery tag to the broker, which then closes the channel (and gives back every message
    being handled on it: duplicates)."""

    def __init__(self) -> None:
        self.pending: dict[int, object] = {}  # started, not acked: delivery tag -> message
        self.done: set[int] = set()
        self.last_tag = 0
        self.scheduled = False
        self.outbox: collections.deque = collections.deque()  # (message, multiple), in order
        self.sender: asyncio.Task | None = None

    def delivered(self, msg) -> None:
        """Every delivery, once, in arrival order."""
        tag = msg.delivery_tag or 0
        if tag <= self.last_tag:  # tags start again: a new channel
            self.pending.clear()
            self.done.clear()
        self.last_tag = tag

    def start(self, msg) -> None:
        self.pending[msg.delivery_tag] = msg

    def finish(self, msg) -> None:
        tag = msg.delivery_tag
        if self.pending.get(tag) is not msg:
            return  # its channel is gone: the broker gives it back (dedup knows it is done)
        self.done.add(tag)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Ack the finished messages: the run at the front in one frame, the others alone."""
        self.scheduled = False
        if not self.done:
            return
        run = 0
        for tag in sorted(self.pending):
            if tag not in self.done:
                break
            run += 1
        order = sorted(self.done)
        acks = [(self.pending[order[run - 1]], run > 1)] if run else []
        acks += [(self.pending[tag], False) for tag in order[run:]]
        for tag in order:
            del self.pending[tag]
        self.done.clear()
        self.outbox.extend(acks)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self.outbox:
            msg, multiple = self.outbox.popleft()
            await _ack(msg, multiple)  # returns once the frame is written

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Send the acks due now and wait for them (before a channel closes); what is not
        written within ``timeout_s`` (the connection is gone) the broker gives back."""
        self.flush()
        if self.sender is not None and not self.sender.done():
            await asyncio.wait([self.sender], timeout=timeout_s)


async def _ack(msg, multiple: bool) -> None:
    try:
        await msg.ack(multiple=multiple)
    except Exception as exc:  # noqa: BLE001 - channel gone: the broker gives them back
        log.warning("ack not sent", extra={"error": repr(exc), "multiple": multiple})


class _Shard:
    def __init__(self, index: int, name: str) -> None:
        self.index, self.name = index, name
        self.channel = self.queue = self.tag = None
        self.paused = False
        self.held: list = []
        self.inflight = 0
        self.last_delivery = 0.0
        self.acks = _Acks()


class Worker:
    def __init__(self, config: RuntimeConfig, keyring=None) -> None:
        data = copy.deepcopy(config.data)
        data["channels"]["enterprise_chat"]["enabled"] = False  # the broker is the channel
        self.config = RuntimeConfig(data, config.source)
        self.runtime = Runtime(self.config, keyring)
        self.runtime.readiness = self.readiness  # /readyz: broker, storage, skills
        self.pipeline = self.runtime.pipeline
        self.bm = BrokerMetrics(self.runtime.metrics.registry)
        self.broker = config["broker"]
        self.keys = MessageKeys.from_config(config)  # only gateways and workers hold them
        self.webhook_hosts = WebhookHosts.from_config(config)
        self.topology = Topology.from_config(self.broker)
        self.prefetch = int(self.broker["prefetch"])
        self.user_id = login_of(self.broker["url"])
        ch = config["channels"]["enterprise_chat"]
        cc = config.get("cards")
        cards = CardStreamer(
            ch["endpoint"] or DEFAULT_ENDPOINT,
            config.app_key,
            config.app_secret,
            template_id=cc["ai_template_id"],
            content_key=cc["content_key"],
            callback_type=cc["callback_type"],
            metrics=self.runtime.metrics,
            **openapi_options(ch),
        )
        self.delivery = Delivery(
            self.runtime.skills,
            self.runtime.sender,
            cards,
            RobotSender(cards.api, config.app_key),
            self.runtime.metrics,
            cc["stream_chunks"],
            store=self.runtime.store,
            interactive_template=cc["interactive_template_id"],
        )
        if self.runtime.audit.chain is not None:  # message records go to the audit-writer
            self.runtime.audit.chain = _BrokerAuditSink(self)
            self.runtime.audit.store = None
        self.connection = self.pub = None
        self.shards = [_Shard(i, n) for i, n in enumerate(self.topology.shard_queues)]
        self._lanes: dict[str, collections.deque] = {}
        self._tasks: list[asyncio.Task] = []
        self.accepting = True
        self.workers = 1

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.connection = await connect(self.broker, "dingskill-worker")
        self.pub = await self.connection.channel(publisher_confirms=True)
        await self.topology.declare(self.pub)
        self._loop = asyncio.get_running_loop()
        await self.runtime.start()
        presence = await self.connection.channel()
        # declared (passively) through the robust channel: restored with its consumer after a
        # reconnection (get_queue would not be)
        pq = await presence.declare_queue(self.topology.presence_queue, passive=True)
        await pq.consume(_never, no_ack=True)
        self._presence = presence
        for shard in self.shards:
            await self._subscribe(shard)
        self._tasks.append(asyncio.create_task(self._balance()))
        log.info("worker started", extra={"shards": self.topology.shards, "port": self.port})

    @property
    def port(self) -> int:
        return self.runtime.port

    async def _subscribe(self, shard: _Shard) -> None:
        shard.channel = await self.connection.channel()
        await shard.channel.set_qos(prefetch_count=self.prefetch)
        shard.queue = await shard.channel.declare_queue(shard.name, passive=True)
        shard.paused, shard.held = False, []
        shard.acks = _Acks()  # a new channel: its delivery tags start at 1
        shard.tag = await shard.queue.consume(lambda m, s=shard: self._on_message(s, m))

    async def stop(self, drain_timeout: float = 10.0) -> None:
        self.accepting = False
        for t in self._tasks:
            t.cancel()
        for shard in self.shards:
            shard.paused = True
            if shard.queue is not None and shard.tag is not None:
                try:
                    await shard.queue.cancel(shard.tag)
                except Exception:  # noqa: BLE001 - the connection may be gone
                    pass
        deadline = time.monotonic() + drain_timeout
        while self._lanes and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for shard in self.shards:
            await shard.acks.drain()
        await self.runtime.audit.flush()
        await self.runtime.stop()
        await self.delivery.cards.close()
        if self.connection is not None:
            await self.connection.close()
        log.info("worker stopped")

    async def run(self) -> None:
        await run_until_signal(self.start, self.stop)

    async def readiness(self) -> dict:
        return {
            "broker": self.connection is not None and not self.connection.is_closed,
            "storage": await self.runtime.store.ping(),
            "skills": self.runtime.skills.last_error is None,
        }

    # ------------------------------------------------------------------ messages
    async def _on_message(self, shard: _Shard, msg) -> None:
        self.bm.deliveries.inc()
        if msg.redelivered:
            self.bm.redeliveries.inc()
        shard.acks.delivered(msg)
        if shard.paused or not self.accepting:
            shard.held.append(msg)  # given back unstarted when the channel closes
            return
        await self._start(shard, msg)

    async def _start(self, shard: _Shard, msg) -> None:
        shard.last_delivery = time.monotonic()
        shard.acks.start(msg)
        refused = self.keys.verify(msg.body, msg.message_id, msg.headers or {})
        if refused:  # never parsed, never acted on: an operator sees it in the DLQ
            await self._dead_letter(shard, msg, refused.split(":", 1)[0], refused)
            return
        try:
            data = json.loads(msg.body)
            conv = str(data["conversationId"])
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(shard, msg, "invalid", f"not a robot message: {exc}")
            return
        shard.inflight += 1
        lane = self._lanes.get(conv)
        if lane is None:
            lane = self._lanes[conv] = collections.deque()
            lane.append((shard, msg, data))
            asyncio.ensure_future(self._run_lane(conv, lane))
        else:
            lane.append((shard, msg, data))

    async def _run_lane(self, conv: str, lane: collections.deque) -> None:
        """One conversation's messages, one after another, in delivery order."""
        try:
            while lane:
                shard, msg, data = lane[0]
                try:
                    await self._handle(shard, msg, data)
                except Exception as exc:  # noqa: BLE001 - never let a lane die
                    log.error("message not handled", extra={"error": repr(exc)})
                finally:
                    lane.popleft()
                    shard.inflight -= 1
        finally:
            self._lanes.pop(conv, None)

    async def _handle(self, shard: _Shard, msg, data: dict) -> None:
        headers = msg.headers or {}
        attempt = int(headers.get(HDR_ATTEMPT) or 0)
        try:
            message, webhook, expires = parse_robot_message(
                data, str(headers.get(HDR_CHANNEL) or "stream")
            )
        except FrameError as exc:
            await self._dead_letter(shard, msg, "invalid", str(exc))
            return
        if not self.webhook_hosts.allows(webhook):
            await self._dead_letter(
                shard,
                msg,
                "webhook-host",
                "its session webhook's host is not on broker.session_webhook_hosts "
                "(never called); add the host if the platform moved, then replay it",
            )
            return
        replayed = False
        if headers.get(HDR_REPLAYED):
            refused, nonce = self.keys.check_replay(
                headers.get(HDR_REPLAY_TOKEN), msg.message_id, msg.body
            )
            if refused is None and attempt == 0:
                # each token once: a copy of a replayed message is not a second replay
                state = await self.pipeline.store.claim(f"replay:{nonce}", self.keys.replay_ttl_s)
                if state.value != "new":
                    refused = "replay refused: this replay token was already used"
            if refused and attempt == 0:
                await self._dead_letter(shard, msg, "replay-refused", refused)
                return
            replayed = refused is None

        undeliverable: list[str] = []

        async def sink(reply) -> bool:
            outcome = await self.delivery.attempt(message, reply, webhook, expires)
            if outcome.ok:
                return True
            if outcome.reason is not None and outcome.reason.permanent:
                # trying again cannot help: audited as reply_failed, then dead-lettered
                undeliverable.append(reply.error or outcome.reason.value)
                return False
            raise ReplyFailed(reply.error or "reply failed")  # a later attempt may answer it

        # an earlier attempt of this message has ended (see the module's docstring)
        again = bool(msg.redelivered or attempt or replayed)
        try:
            if replayed and message.msg_id:
                # an operator replayed it from the dead-letter queue: answer it whatever an
                # earlier attempt left (an "uncertain" one, say)
                await self.pipeline.store.release(message.msg_id)
            await self.pipeline.process(message, sink, redelivered=again)
        except InProgress:
            pass  # another copy is being handled: it answers (or comes back if its holder dies)
        except ReplyUncertain:
            await self._dead_letter(
                shard,
                msg,
                "uncertain",
                "its previous attempt ended while replying: the user may have the answer; "
                "check, then `dingskill dlq replay` it if not",
            )
            return
        except Exception as exc:  # noqa: BLE001 - storage down, reply refused: try later
            if isinstance(exc, ReplyFailed) and message.msg_id:
                try:  # not delivered: a later attempt may answer it
                    await self.pipeline.store.release(message.msg_id)
                except Exception:  # noqa: BLE001 - the entry expires by itself
                    pass
            await self._retry(shard, msg, attempt + 1, f"{type(exc).__name__}: {exc}")
            return
        if undeliverable:
            await self._dead_letter(shard, msg, "undeliverable", undeliverable[0])
            return
        shard.acks.finish(msg)

    async def _publish(self, exchange_name: str, routing_key: str, msg, headers: dict) -> None:
        import aio_pika

        out = aio_pika.Message(
            msg.body,
            content_type=msg.content_type or "application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=msg.message_id,
            user_id=self.user_id,
            headers=headers,
        )
        if exchange_name:
            ex = await self.pub.get_exchange(exchange_name, ensure=False)
        else:
            ex = self.pub.default_exchange
        await ex.publish(
            out,
            routing_key=routing_key,
            mandatory=True,
            timeout=float(self.broker["confirm_timeout_s"]),
        )

    async def _retry(self, shard: _Shard, msg, failed: int, error: str) -> None:
        headers = {**(msg.headers or {}), HDR_ATTEMPT: failed, HDR_ERROR: error[:500]}
        if failed >= self.topology.max_attempts:
            await self._dead_letter(shard, msg, "attempts", error, headers)
            return
        log.warning(
            "attempt failed; retrying later",
            extra={"msg_id": msg.message_id, "attempt": failed, "error": error[:200]},
        )
        await self._publish(
            self.topology.retry_exchange(failed), msg.routing_key or "0", msg, headers
        )
        self.bm.retries.inc()
        shard.acks.finish(msg)  # after the broker confirmed the copy

    async def _dead_letter(
        self, shard: _Shard, msg, reason: str, error: str, headers: dict | None = None
    ) -> None:
        headers = headers or {**(msg.headers or {}), HDR_ERROR: error[:500]}
        headers["x-dingskill-dead-reason"] = reason
        headers["x-dingskill-dead-ms"] = int(time.time() * 1000)
        await self._publish("", self.topology.dlq, msg, headers)
        self.bm.dead_letters.labels(reason).inc()
        log.error(
            "message dead-lettered",
            extra={"msg_id": msg.message_id, "reason": reason, "error": error[:200]},
        )
        shard.acks.finish(msg)  # after the broker confirmed the copy

    # ------------------------------------------------------------------ balance and gauges
    async def _balance(self, interval_s: float = 2.0, window_s: float = 6.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._gauges()
                now = time.monotonic()
                active = [
                    s
                    for s in self.shards
                    if not s.paused and now - s.last_delivery < window_s and s.last_delivery
                ]
                self.bm.shards_active.set(len(active))
                share = math.ceil(len(self.shards) / max(1, self.workers))
                if self.workers > 1 and len(active) > share:
                    active.sort(key=lambda s: s.inflight)
                    for s in active[: len(active) - share]:
                        await self._hand_over(s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker away: try next round
                log.debug("balance round failed", extra={"error": repr(exc)})

    async def _gauges(self) -> None:
        # passive declares on the raw channel: a robust channel answers them from its cache
        ch = await self.pub.get_underlay_channel()
        ok = await ch.queue_declare(self.topology.presence_queue, passive=True)
        self.workers = max(1, ok.consumer_count)
        self.bm.consumers.labels("worker").set(self.workers)
        for name in [*self.topology.shard_queues, self.topology.dlq, self.topology.audit_queue]:
            ok = await ch.queue_declare(name, passive=True)
            self.bm.queue_depth.labels(name).set(ok.message_count)

    async def _hand_over(self, shard: _Shard) -> None:
        """Give ``shard`` to the next consumer in line without breaking its order."""
        shard.paused = True
        deadline = time.monotonic() + 30
        while shard.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if shard.inflight > 0:  # a stuck message: keep the shard
            shard.paused = False
            held, shard.held = shard.held, []
            for m in held:
                await self._start(shard, m)
            return
        log.info("handing shard over", extra={"shard": shard.name, "workers": self.workers})
        await shard.acks.drain()  # the finished ones are acked, not given back
        await shard.channel.close()  # the held, unstarted messages go back first in line
        shard.last_delivery = 0.0
        await asyncio.sleep(0.5)
        if self.accepting:
            await self._subscribe(shard)


async def _never(message) -> None:  # pragma: no cover - nothing is published to Q.workers
    pass


class _BrokerAuditSink:
    """Stands in for the audit chain in a worker: message records travel to the audit-writer
    (called from the audit log's writer thread; waits for the broker's confirm)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def enforce_retention(self) -> None:  # the audit-writer's chain enforces it
        return None

    def append_many(self, records: list[dict]) -> None:
        if not records:
            return
        deadline = time.monotonic() + 60
        while True:
            fut = asyncio.run_coroutine_threadsafe(self._send(records), self.worker._loop)
            try:
                return fut.result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - broker away: keep the records, retry
                if time.monotonic() > deadline:
                    log.error(
                        "audit records not sent", extra={"n": len(records), "error": repr(exc)}
                    )
                    raise
                time.sleep(1.0)

    async def _send(self, records: list[dict]) -> None:
        import aio_pika

        body = json.dumps(records, ensure_ascii=False, separators=(",", ":")).encode()
        await asyncio.wait_for(
            self.worker.pub.default_exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=self.worker.topology.audit_queue,
                mandatory=True,
            ),
            float(self.worker.broker["confirm_timeout_s"]),
        )
