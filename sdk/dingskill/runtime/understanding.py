"""The understanding step's heavy part, off the event loop and batched across messages.

Before the engine decides (synchronously, on the loop), the Pipeline awaits
:meth:`Understanding.prepare`. A :class:`~dingskill.runtime.batching.DynamicBatcher` hands
the concurrent messages to a pool of classification threads, which

1. computes their sentence encodings, for every encoder of the engine's skills that caches
   utterances (the ``use-m3`` default), in one forward pass per batch — they land in the
   encoder's cache;
2. then runs the engine's own ``route(text)`` for each of them (``route_ahead``): every skill
   model's decision view (n-gram scores, novelty gate, rules) lands in that model's cache.

The engine's ``skill.decide(text)`` on the loop then finds everything computed: the engine
does not know about the batching, and what it decides is what it would have decided alone
(the same functions ran, only earlier and elsewhere). The loop keeps the transport: ACKs,
webhooks and ``/healthz`` are never queued behind a forward pass. The threads share the GIL
with the loop for their Python parts, so the interpreter's switch interval is shortened to
1 ms (the loop waits at most that long for it).

Bounded: when ``max_queue`` messages already wait for (or are in) a forward pass, ``prepare``
raises :class:`Overloaded` instead of queueing more, and the Pipeline answers "busy, please
retry" (:data:`BUSY`), counted in ``dingskill_messages_shed_total``. What is accepted keeps a
bounded wait: at most ``max_queue`` encodings ahead of it.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from ..nlu.normalize import normalize_text
from ..skills.flow import stale_flow_skill
from .batching import BatcherClosed, DynamicBatcher

__all__ = [
    "BUSY",
    "Overloaded",
    "Understanding",
    "UnderstandingConfig",
    "default_workers",
    "entity_skills",
]

log = logging.getLogger("dingskill.runtime")

BUSY = {
    "zh": "现在消息有点多，我一时忙不过来，请稍等片刻再发一次。",
    "en": "I'm handling a lot of messages right now; please send yours again in a moment.",
}


class Overloaded(RuntimeError):
    """The classification queue is full: the message is answered "busy, please retry"."""


def default_workers() -> int:
    """Classification threads by default: one per core this process may run on, but one:
    the event loop keeps a core for the transport (with them, every core is busy)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass(frozen=True)
class UnderstandingConfig:
    """``workers``: classification threads (0: :func:`default_workers`); ``max_batch``: utterances per
    forward pass; ``window_ms``: how long the first message of a batch waits for others (0:
    not at all; batches still form while every thread is busy);
    ``max_queue``: messages waiting for an encoding before new ones are shed (0: never);
    ``max_wait_ms``: a message that has already waited this long in the Pipeline (a backlog
    on the loop itself, which the queue does not see) is shed too (0: never);
    ``route_ahead``: also run the engine's routing in the threads (decisions cached)."""

    workers: int = 0
    max_batch: int = 32
    window_ms: float = 0.0
    max_queue: int = 256
    max_wait_ms: float = 2000.0
    route_ahead: bool = True


def entity_skills(engine, context: dict | None) -> tuple[tuple, bool]:
    """The skills whose entities of a message the engine will look up in ``context``'s
    state: the pending flow's skill, else the skill of a flow that ended within the stale
    window (:func:`~dingskill.skills.flow.stale_answer` reads an answer to it); and whether the
    routed winner's too (no flow pending: the winner's response starts with them). ``((),
    False)`` for an engine without an entity cache."""
    if getattr(engine, "entity_cache", None) is None or context is None:
        return (), False
    by_id = getattr(engine, "_by_id", {})
    flow = context.get("flow")
    if flow:
        skill = by_id.get(flow.get("skill"))
        return ((skill,) if skill is not None else ()), False
    skill = stale_flow_skill(engine, context)
    return ((skill,) if skill is not None else ()), True


def _entities_cached(engine, skills: tuple, winner: bool, text: str) -> bool:
    """Whether the entities (and decisions) ``text``'s turn looks up are all cached."""
    decisions = getattr(engine, "decision_cache", None)
    if decisions is not None and not decisions.has(text, engine.options, winner):
        return False
    cache = getattr(engine, "entity_cache", None)
    if cache is None or not (skills or winner):
        return True
    return cache.ready(skills, text, engine._today(), winner)


_NOT_ROUTED = object()


def _route_ahead(engine, text: str, arbitration: bool):
    """The routed winner's skill of ``text`` (None: no winner), computed for the engine's
    decision cache (with ``arbitration``, the new request's arbitration as well), or for
    an engine without one, by its ``route`` (warming the models' caches);
    ``_NOT_ROUTED`` for an engine that does not route."""
    cache = getattr(engine, "decision_cache", None)
    if cache is not None:
        return cache.fill(engine.skills, text, engine.options, arbitration)[0]
    route = getattr(engine, "route", None)
    return route(text)[0] if route is not None else _NOT_ROUTED


class Understanding:
    """Computes the encodings a message's decision needs ahead of the engine, batched."""

    def __init__(self, config: UnderstandingConfig | None = None, metrics=None) -> None:
        self.config = config or UnderstandingConfig()
        self.metrics = metrics
        self.workers = self.config.workers or default_workers()
        self._batcher: DynamicBatcher | None = None
        self._closed = False
        from ..nlu.use_m3 import pin_blas_threads

        # parallelism comes from batches side by side, one BLAS thread each
        pin_blas_threads(1)
        if sys.getswitchinterval() > 0.001:
            sys.setswitchinterval(0.001)  # the loop waits at most 1 ms for the GIL

    @staticmethod
    def encoders(engine) -> list:
        """The distinct caching encoders of ``engine``'s trained skills."""
        out: dict[int, object] = {}
        for skill in getattr(engine, "skills", ()) or ():
            model = getattr(skill, "_model", None)
            emb = getattr(model, "embedder_", None)
            if emb is not None and getattr(emb, "caches_texts", False):
                out.setdefault(id(emb), emb)
        return list(out.values())

    def _compute(self, items: list[tuple]) -> list[None]:
        """In a classification thread: one forward pass per encoder for the batch's new
        texts, then the engines' routing of each text (its results land in the caches),
        then the entities the engine will look up (see :func:`entity_skills`)."""
        by_encoder: dict[int, tuple[object, dict[str, None]]] = {}
        for engine, _text, norm, _skills, _winner in items:
            for enc in self.encoders(engine):
                by_encoder.setdefault(id(enc), (enc, {}))[1][norm] = None
        for enc, norms in by_encoder.values():
            enc.transform(list(norms), normalized=True)
        for engine, text, _norm, skills, winner in items:
            routed = _NOT_ROUTED
            if self.config.route_ahead:
                try:
                    routed = _route_ahead(engine, text, winner)
                except Exception:  # noqa: BLE001 - the engine meets it again and falls back
                    routed = _NOT_ROUTED
            if skills or (winner and routed is not _NOT_ROUTED):
                try:
                    engine.entity_cache.fill(
                        skills,
                        text,
                        engine._today(),
                        engine._now(),
                        **({"winner": routed} if winner and routed is not _NOT_ROUTED else {}),
                    )
                except Exception:  # noqa: BLE001 - the engine finds them itself (and fails)
                    pass
        return [None] * len(items)

    def _get_batcher(self) -> DynamicBatcher:
        if self._batcher is None:
            self._batcher = DynamicBatcher(
                self._compute,
                max_batch=self.config.max_batch,
                window_s=self.config.window_ms / 1000.0,
                workers=self.workers,
                name="classify",
                on_batch=self._observe,
            )
        return self._batcher

    def _observe(self, size: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.understand_batch.observe(size)
            self.metrics.understand_seconds.observe(seconds)

    @property
    def stats(self):
        """The batcher's :class:`~dingskill.runtime.batching.BatchStats` (None before any)."""
        return self._batcher.stats if self._batcher is not None else None

    @property
    def depth(self) -> int:
        """Messages waiting for (or in) a forward pass."""
        return self._batcher.depth if self._batcher is not None else 0

    def check_wait(self, waited_s: float) -> None:
        """Raise :class:`Overloaded` when a message has already waited ``waited_s`` seconds,
        more than ``max_wait_ms`` (the Pipeline asks before loading its context: cheap)."""
        wait_ms = self.config.max_wait_ms
        if wait_ms and waited_s * 1000 > wait_ms:
            raise Overloaded(f"waited {waited_s * 1000:.0f} ms in the pipeline (max {wait_ms:g})")

    async def prepare(
        self, engine, text: str, waited_s: float = 0.0, context: dict | None = None
    ) -> None:
        """Have the encodings (and decisions, and the entities its turn will look up, given
        the conversation's ``context``) of ``text`` (preprocessed) cached for ``engine``;
        raises :class:`Overloaded` when the queue is full or the message has already waited
        ``waited_s`` seconds, more than ``max_wait_ms``."""
        if self._closed:
            return  # shutting down: the engine computes what it needs itself
        self.check_wait(waited_s)
        encoders = self.encoders(engine)
        norm = normalize_text(text) if encoders else ""
        if not norm:
            return
        skills, winner = entity_skills(engine, context)
        winner = winner and self.config.route_ahead
        if all(enc.cached(norm) for enc in encoders) and _entities_cached(
            engine, skills, winner, text
        ):
            self._count("hit")
            return
        limit = self.config.max_queue
        if limit and self.depth >= limit:
            raise Overloaded(f"{self.depth} messages wait for classification (max {limit})")
        self._count("miss")
        batcher = self._get_batcher()
        if self.metrics is not None:
            self.metrics.understand_queue.set(self.depth + 1)
        try:
            await batcher.submit((engine, text, norm, skills, winner))
        except BatcherClosed:
            return  # shutting down: the engine computes what it needs itself
        except Exception as exc:  # noqa: BLE001 - the engine meets it again and falls back
            log.warning(
                "batched understanding failed; the engine will compute inline",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
        finally:
            if self.metrics is not None:
                self.metrics.understand_queue.set(self.depth)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.understand_cache.labels(result).inc()

    async def close(self) -> None:
        """Finish the forward passes under way and stop the classification threads."""
        self._closed = True
        if self._batcher is not None:
            await self._batcher.close()
