"""``Pipeline``: the one path every message takes, whatever channel it came from.

validate -> message-id dedup -> rate limits -> preprocess -> load context -> engine (route, execute)
-> reply (through the channel's sink, retried) -> save context -> metrics and audit.
It never raises to the channel: failures become fallback replies, counted and audited."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from ..skills.conversation import Message, Reply, context_key
from ..skills.refusal import EMPTY, TOO_LONG, Refusal
from ..text import detect_language
from .preprocess import PreprocessError, preprocess
from .ratelimit import POLITE, RateLimiter
from .storage import DedupState, Stores
from .understanding import BUSY, Overloaded

__all__ = ["Pipeline", "ReplySink", "InProgress", "ReplyUncertain", "TurnBusy"]

log = logging.getLogger("dingskill.runtime")

ReplySink = Callable[[Reply], Awaitable[bool]]


@dataclasses.dataclass
class _Mark:
    """A message's "replying" mark to store with its turn's context (one store operation
    instead of two, and the turn's effects never stored without it); ``stored``: it was."""

    msg_id: str
    stored: bool = False


class ReplyUncertain(RuntimeError):
    """A redelivered message whose previous attempt ended while replying (its process died
    mid-reply): the reply may have reached the user, and the session webhook has no
    idempotency key. It is not answered again by itself (never twice); the broker worker
    dead-letters it with reason ``uncertain`` so an operator can check and replay it."""


class InProgress(RuntimeError):
    """A second delivery of a message whose first attempt is still running (its dedup entry
    says ``processing``): it will be answered once, by that attempt. The channel says so
    (Stream: an "in progress" ACK; webhook: 409; broker worker: ack the copy)."""


class TurnBusy(RuntimeError):
    """Another process kept the conversation's turn lease for longer than the lease lasts
    (its turns kept coming): the message is answered "busy, please retry" (outcome ``shed``)
    rather than run on a context that another turn is changing."""


def _lang(text: str) -> str:
    return "en" if detect_language(text) == "en" else "zh"


class Pipeline:
    """Processes messages for one runtime (or one notebook widget)."""

    def __init__(
        self,
        engine_provider: Callable[[], object],
        store,
        metrics=None,
        audit=None,
        limits: dict | None = None,
        admin=None,
        engine_for: Callable[[Message], object] | None = None,
        review=None,
        shared_turns: bool = False,
    ) -> None:
        self.engine_provider = engine_provider
        # optional: the engine for one message (visibility scopes and staged releases choose
        # skill versions per sender); else every message gets ``engine_provider()``
        self.engine_for = engine_for
        # optional ReviewQueue: unrecognised / low-confidence utterances kept for labelling
        self.review = review
        # one store per concern (a single backend serves all four unless a Stores is given)
        self.stores = Stores.of(store)
        self.store = self.stores.dedup  # message-id dedup (the top of ``process``)
        self.metrics = metrics
        self.audit = audit
        self.limits = {
            "user_per_minute": 30,
            "conversation_per_minute": 60,
            "global_per_second": 2000,
            "max_text_chars": 4000,
            "dedup_ttl_s": 86400,
            "max_inflight": 1000,
            **(limits or {}),
        }
        # messages processed at once; more wait for a slot (back-pressure on the channel)
        self._slots = asyncio.Semaphore(int(self.limits["max_inflight"]))
        self.ratelimiter = RateLimiter(
            self.stores.limits,
            self.limits["user_per_minute"],
            self.limits["conversation_per_minute"],
            self.limits["global_per_second"],
        )
        self.admin = admin  # optional: handles "/skills", "/reload" chat commands
        # called with (message, reply) after every answered message (tests, the notebook)
        self.observers: list[Callable[[Message, Reply], None]] = []
        self.media = None  # runtime.media.MediaPolicy: messages without readable text
        # runtime.understanding.Understanding: encodings computed ahead of the engine, batched
        # across concurrent messages in classification threads (None: the engine computes
        # them itself, on the loop: the notebook and the terminal)
        self.understanding = None
        self.inflight = 0
        self._active: set[str] = set()  # message ids this process is handling now
        self._locks: dict[str, asyncio.Lock] = {}
        # processes sharing the store (``dingskill run`` with several workers, replicas on
        # one Redis): each turn also holds the store's lease on its conversation, so turns
        # run one at a time across processes too. Off: the asyncio lock alone (one process).
        self.shared_turns = shared_turns
        self.turn_owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.turn_lease_s = float(self.limits.get("handler_timeout_s", 5.0)) + float(
            self.limits.get("turn_lease_margin_s", 10.0)
        )

    def use_store(self, store) -> None:
        """Switch to another store (the notebook's "new conversation")."""
        self.stores = Stores.of(store)
        self.store = self.stores.dedup
        self.ratelimiter.store = self.stores.limits

    def route(self, text: str):
        """The routing decision for ``text`` after preprocessing: ``(skill, Decision)``
        (``(None, None)`` for text that preprocessing refuses or empties)."""
        try:
            clean = preprocess(text, self.limits["max_text_chars"])
        except PreprocessError:
            return None, None
        return self.engine_provider().route(clean) if clean else (None, None)

    async def _release(self, msg_id: str) -> None:
        try:
            await self.store.release(msg_id)
        except Exception:  # noqa: BLE001 - the claim expires by itself
            pass

    async def _admit(self, message: Message, redelivered: bool) -> bool:
        """Message-id dedup: True to handle ``message``; False for one answered (or maybe
        answered); raises :class:`InProgress` for one whose first attempt still runs."""
        if message.msg_id in self._active:  # this process is on it now: no store round trip
            self._count(message.channel, "in_progress")
            raise InProgress(message.msg_id)
        state = await self.store.claim(message.msg_id, self.limits.get("claim_ttl_s", 120))
        if state is DedupState.NEW:
            return True
        if state is DedupState.PROCESSING:
            if redelivered:  # the attempt that set it has ended half-way: handle it again
                return True
            self._count(message.channel, "in_progress")
            raise InProgress(message.msg_id)
        if state is DedupState.REPLYING and redelivered:
            # its attempt ended while replying: the reply may have reached the user
            self._count(message.channel, "uncertain")
            raise ReplyUncertain(message.msg_id)
        if self.metrics is not None:
            self.metrics.duplicates.inc()
        self._count(message.channel, "duplicate")
        return False

    def _count(self, channel: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.messages.labels(channel, outcome).inc()

    async def process(
        self, message: Message, reply_sink: ReplySink | None = None, *, redelivered: bool = False
    ) -> Reply | None:
        """Handle one message; returns the reply, or None for a message already answered.
        Raises :class:`InProgress` for a second delivery while its first attempt still runs,
        and :class:`ReplyUncertain` for a redelivery whose previous attempt ended mid-reply.

        ``redelivered``: the transport guarantees the previous attempt has ended (a broker
        gives a message back only after its consumer's channel closed, or a retry / replay
        published after a failed attempt), so a ``processing`` entry is a leftover and the
        message is handled again. A platform resend is not one (``dingskill run``)."""
        t0 = time.perf_counter()
        if message.msg_id:
            if not await self._admit(message, redelivered):
                return None
        mark = None
        if (
            reply_sink is not None
            and message.msg_id
            and self.stores.context is self.store
            and getattr(self.store, "replying_with_turn", False)
        ):
            mark = _Mark(message.msg_id)
        self.inflight += 1
        self._active.add(message.msg_id)
        if self.metrics is not None:
            self.metrics.inflight.inc()
        try:
            try:
                async with self._slots:
                    reply, outcome = await self._process(message, t0, mark)
            except TurnBusy as exc:  # another process kept the conversation: "busy, retry"
                log.warning("turn lease not obtained", extra={"msg_id": message.msg_id})
                reply, outcome = self._shed(message, _lang(message.text or ""), exc)
            except Exception as exc:  # noqa: BLE001 - storage down, say: let it be redelivered
                if message.msg_id:
                    await self._release(message.msg_id)
                raise RuntimeError(
                    f"message {message.msg_id} not handled: {type(exc).__name__}: {exc}"
                ) from exc
            sent = True
            if reply_sink is not None:
                if message.msg_id and not (mark is not None and mark.stored):
                    await self.store.replying(message.msg_id, self.limits["dedup_ttl_s"])
                sent = await reply_sink(reply)
                if not sent:
                    outcome = "reply_failed"
                    if self.metrics is not None:
                        self.metrics.reply_failures.inc()
            if message.msg_id:
                try:
                    await self.store.finish(message.msg_id, self.limits["dedup_ttl_s"])
                except Exception as exc:  # noqa: BLE001 - storage down after the reply went out
                    # answered all the same: its entry stays "replying" (never answered
                    # again), and trying it again would only make it "uncertain"
                    log.warning(
                        "answered, but its dedup entry was not finished",
                        extra={"msg_id": message.msg_id, "error": f"{type(exc).__name__}: {exc}"},
                    )
            self._count(message.channel, outcome)
            for observe in self.observers:
                observe(message, reply)
            if self.metrics is not None:
                self.metrics.latency.labels(message.channel).observe(time.perf_counter() - t0)
            if self.audit is not None:
                self.audit.record(
                    message.sender_id,
                    reply.skill_id or "-",
                    "message",
                    outcome,
                    client_ip=getattr(message, "client_ip", ""),
                    intent=reply.intent,
                    msg_id=message.msg_id,
                    channel=message.channel,
                    conversation=message.conversation_id,
                    source=reply.source,
                    confidence=round(reply.confidence, 4),
                    latency_ms=round((time.perf_counter() - t0) * 1000, 2),
                    error=reply.error,
                )
            if self.review is not None and outcome in ("ok", "fallback", "error"):
                self.review.observe(message.text, reply)
            return reply
        finally:
            self._active.discard(message.msg_id)
            self.inflight -= 1
            if self.metrics is not None:
                self.metrics.inflight.dec()

    @contextlib.asynccontextmanager
    async def _turn(self, key: str, mark: _Mark | None = None):
        """One turn of conversation ``key``, in order with its other turns within this
        replica (the conversation's lock) and across processes (the store's lease, with
        ``shared_turns``): yields ``(context, save)``; ``await save()`` stores the context
        (giving the lease back, and storing ``mark``, in the same store operation). Leaving
        without saving (a shed, an error) gives the lease back and leaves the stored context
        as it was."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            context = await self._begin(key)
            saved = False

            async def save() -> None:
                nonlocal saved
                saved = True  # from here _end answers for the lease, whatever happens
                await self._end(key, context, mark)

            try:
                yield context, save
            finally:
                if not saved and self.shared_turns:
                    await self._unlease(key)
        if not lock.locked() and len(self._locks) > 10000:
            self._locks.pop(key, None)

    async def _begin(self, key: str) -> dict:
        """The conversation's context; with ``shared_turns``, read with the conversation's
        turn lease taken from the store (one store operation), waiting while another process
        holds it: short sleeps from 1 ms, until the lease has lasted its whole TTL (a holder
        that died has lost it by then); raises :class:`TurnBusy` after that."""
        store = self.stores.context
        if not self.shared_turns:
            return await store.get_context(key)
        owner, ttl = self.turn_owner, self.turn_lease_s
        try:
            context = await store.begin_turn(key, owner, ttl)
            if context is not None:
                return context
            if self.metrics is not None:
                self.metrics.turn_waits.inc()
            deadline, pause = time.monotonic() + ttl + 1.0, 0.001
            while time.monotonic() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
                context = await store.begin_turn(key, owner, ttl)
                if context is not None:
                    return context
        except BaseException:  # failed or cancelled: the lease may be taken, the read not
            await self._unlease(key)
            raise
        raise TurnBusy(f"turn of this conversation held elsewhere for over {ttl:.0f} s")

    async def _end(self, key: str, context: dict, mark: _Mark | None = None) -> None:
        """Save the context; with ``shared_turns`` and the lease given back in the same store
        operation, and with ``mark``, the message's "replying" mark too. If that fails, the
        context and the lease again one at a time: the context (its failure raised) and the
        lease (its failure only logged, it expires by itself); the mark is left to the
        caller (``mark.stored`` stays False)."""
        store = self.stores.context
        ttl = self.limits["dedup_ttl_s"]
        extra = {"replying": (mark.msg_id, ttl)} if mark is not None else {}
        if not self.shared_turns:
            await store.set_context(key, context, **extra)
            if mark is not None:
                mark.stored = True
            return
        try:
            await store.end_turn(key, self.turn_owner, context, **extra)
            if mark is not None:
                mark.stored = True
        except Exception:  # noqa: BLE001 - any part may have happened: context, lease again
            try:
                await store.set_context(key, context)
            finally:
                await self._unlease(key)

    async def _unlease(self, key: str) -> None:
        try:
            await self.stores.context.release_turn(key, self.turn_owner)
        except Exception as exc:  # noqa: BLE001 - it expires by itself after turn_lease_s
            log.warning("turn lease not released", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _process(
        self, message: Message, t0: float | None = None, mark: _Mark | None = None
    ) -> tuple[Reply, str]:
        lang = _lang(message.text or "")
        if len(message.text) > self.limits["max_text_chars"]:
            return await self._refuse(message, Refusal.TOO_LONG, "text too long", mark), "rejected"
        scope = await self.ratelimiter.check(message)
        if scope is not None:
            if self.metrics is not None:
                self.metrics.rate_limited.labels(scope).inc()
            return Reply(
                text=POLITE[lang], source="ratelimit", error=f"rate limit: {scope}"
            ), "rate_limited"
        if not message.text.strip() and message.msgtype != "text" and self.media is not None:
            # a picture, file, video or an unknown type: its skill, or a polite answer
            return await self._locked(
                message, lambda engine, ctx: self.media.answer(engine, message, ctx), mark
            )
        try:
            text = preprocess(message.text, self.limits["max_text_chars"])
        except PreprocessError as exc:
            return await self._refuse(message, Refusal.TOO_LONG, str(exc), mark), "rejected"
        if not text:
            return await self._refuse(message, Refusal.EMPTY, "empty text", mark), "empty"
        if self.admin is not None and text.startswith("/"):
            handled = await self.admin(message, text)
            if handled is not None:
                return handled, "admin"
        # how long it waited for the loop so far (a backlog), not for its conversation's turn
        waited = time.perf_counter() - t0 if t0 is not None else 0.0
        if self.understanding is not None:
            try:  # too late already: shed before any storage work
                self.understanding.check_wait(waited)
            except Overloaded as exc:
                return self._shed(message, lang, exc)
        async with self._turn(context_key(message), mark) as (context, save):
            engine = self.engine_for(message) if self.engine_for else self.engine_provider()
            clean = dataclasses.replace(message, text=text) if text != message.text else message
            if self.understanding is not None:
                try:
                    await self.understanding.prepare(engine, text, waited, context)
                except Overloaded as exc:
                    return self._shed(message, lang, exc)
            t1 = time.perf_counter()
            reply = await engine.handle(clean, context)
            if self.metrics is not None and reply.skill_id:
                self.metrics.skill_calls.labels(reply.skill_id).inc()
                self.metrics.skill_latency.labels(reply.skill_id).observe(time.perf_counter() - t1)
                if reply.error:
                    self.metrics.skill_failures.labels(reply.skill_id).inc()
            await save()
        return reply, (
            "error" if reply.error else ("fallback" if reply.source == "fallback" else "ok")
        )

    async def _refuse(
        self, message: Message, reason: Refusal, error: str, mark: _Mark | None = None
    ) -> Reply:
        """The polite reply to a message refused before understanding (empty, too long),
        given by the engine from the conversation's context (its language; a pending form
        asked again and shown in ``Reply.state``), which stays as it was."""
        limit = self.limits["max_text_chars"]

        async def answer(engine, context: dict) -> Reply:
            refuse = getattr(engine, "refuse", None)
            if refuse is None:  # an engine without the hook: the plain sentence
                lang = _lang(message.text[:200])
                said = (
                    TOO_LONG[lang].format(limit=limit)
                    if reason is Refusal.TOO_LONG
                    else EMPTY[lang]
                )
                return Reply(text=said, source="fallback")
            return await refuse(message, context, reason, limit)

        reply = await self._locked(message, answer, mark)
        reply.error = error
        return reply

    def _shed(self, message: Message, lang: str, exc: Exception) -> tuple[Reply, str]:
        """The polite "busy, please retry" answer of a message shed under overload."""
        if self.metrics is not None:
            self.metrics.shed.labels(message.channel).inc()
        return Reply(text=BUSY[lang], source="busy", error=f"overloaded: {exc}"), "shed"

    async def _locked(self, message: Message, fn, mark: _Mark | None = None) -> tuple[Reply, str]:
        """Run ``fn(engine, context)`` holding the conversation's turn lock (and lease, with
        ``shared_turns``); saves the context (with ``mark``)."""
        async with self._turn(context_key(message), mark) as (context, save):
            engine = self.engine_for(message) if self.engine_for else self.engine_provider()
            result = await fn(engine, context)
            await save()
        return result
