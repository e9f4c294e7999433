"""The understanding step's heavy part, off the event loop and batched across messages.

Before the engine decides (synchronously, on the loop), the Pipeline awaits
:meth:`Understanding.prepare`: the message's sentence encoding, for every encoder of the
engine's skills that caches utterances (the ``use-m3`` default), is computed by a
:class:`~dingskill.runtime.batching.DynamicBatcher` in a pool of classification threads —
concurrent messages share one forward pass — and lands in the encoder's cache. The engine's
``skill.decide(text)`` then finds it there: the engine does not know about the batching.

Bounded: when ``max_queue`` messages already wait for (or are in) a forward pass, ``prepare``
raises :class:`Overloaded` instead of queueing more, and the Pipeline answers "busy, please
retry" (:data:`BUSY`), counted in ``dingskill_messages_shed_total``. What is accepted keeps a
bounded wait: at most ``max_queue`` encodings ahead of it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..nlu.normalize import normalize_text
from .batching import BatcherClosed, DynamicBatcher

__all__ = ["BUSY", "Overloaded", "Understanding", "UnderstandingConfig", "default_workers"]

log = logging.getLogger("dingskill.runtime")

BUSY = {
    "zh": "现在消息有点多，我一时忙不过来，请稍等片刻再发一次。",
    "en": "I'm handling a lot of messages right now; please send yours again in a moment.",
}


class Overloaded(RuntimeError):
    """The classification queue is full: the message is answered "busy, please retry"."""


def default_workers() -> int:
    """Classification threads by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class UnderstandingConfig:
    """``workers``: classification threads (0: one per core); ``max_batch``: utterances per
    forward pass; ``window_ms``: how long the first message of a batch waits for others;
    ``max_queue``: messages waiting for an encoding before new ones are shed (0: never)."""

    workers: int = 0
    max_batch: int = 32
    window_ms: float = 1.5
    max_queue: int = 256


class Understanding:
    """Computes the encodings a message's decision needs ahead of the engine, batched."""

    def __init__(self, config: UnderstandingConfig | None = None, metrics=None) -> None:
        self.config = config or UnderstandingConfig()
        self.metrics = metrics
        self.workers = self.config.workers or default_workers()
        self._batchers: dict[int, DynamicBatcher] = {}
        self._closed = False
        from ..nlu.use_m3 import pin_blas_threads

        # parallelism comes from batches side by side, one BLAS thread each
        pin_blas_threads(1)

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

    def _batcher(self, encoder) -> DynamicBatcher:
        b = self._batchers.get(id(encoder))
        if b is None:
            b = self._batchers[id(encoder)] = DynamicBatcher(
                lambda texts, enc=encoder: enc.transform(texts, normalized=True),
                max_batch=self.config.max_batch,
                window_s=self.config.window_ms / 1000.0,
                workers=self.workers,
                name="classify",
                on_batch=self._observe,
            )
        return b

    def _observe(self, size: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.understand_batch.observe(size)
            self.metrics.understand_seconds.observe(seconds)

    @property
    def depth(self) -> int:
        """Messages waiting for (or in) a forward pass, all encoders together."""
        return sum(b.depth for b in self._batchers.values())

    async def prepare(self, engine, text: str) -> None:
        """Have the encodings of ``text`` (preprocessed) cached for ``engine``'s decision;
        raises :class:`Overloaded` when the queue is full."""
        if self._closed:
            return  # shutting down: the engine computes what it needs itself
        encoders = self.encoders(engine)
        norm = normalize_text(text) if encoders else ""
        if not norm:
            return
        for enc in encoders:
            if enc.cached(norm):
                self._count("hit")
                continue
            limit = self.config.max_queue
            if limit and self.depth >= limit:
                raise Overloaded(f"{self.depth} messages wait for classification (max {limit})")
            self._count("miss")
            batcher = self._batcher(enc)
            if self.metrics is not None:
                self.metrics.understand_queue.set(self.depth + 1)
            try:
                await batcher.submit(norm)
            except BatcherClosed:
                return  # shutting down: the engine computes what it needs itself
            except Exception as exc:  # noqa: BLE001 - the engine meets it again and falls back
                log.warning(
                    "batched encoding failed; the engine will encode inline",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
                return
            finally:
                if self.metrics is not None:
                    self.metrics.understand_queue.set(self.depth)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.understand_cache.labels(result).inc()

    async def close(self) -> None:
        """Finish the forward passes under way and stop the classification threads."""
        self._closed = True
        for b in list(self._batchers.values()):
            await b.close()
        self._batchers.clear()
