"""``DynamicBatcher``: concurrent requests share one call of a batch function, off the loop.

What inference servers call dynamic batching: the first request of a batch opens a short
collection window (``window_s``, 1-2 ms; 0: the batch goes at the loop's next turn);
requests arriving meanwhile join it; the batch goes
to a worker thread when the window closes or it holds ``max_batch`` requests. While every
worker is busy, requests keep gathering (up to ``max_batch`` a batch), so under load batches
grow by themselves and the cost per request falls; when idle a lone request waits at most
one window. The batch function runs in a thread pool (``workers`` threads): numpy releases
the GIL in its matrix products, so batches run side by side on several cores while the event
loop goes on with ACKs, webhooks and ``/healthz``.

Every waiter gets its own result, in order; an exception raised by the batch function reaches
every waiter of that batch. ``depth`` (requests waiting or being computed) is what a caller
bounds to shed load.

Example::

    batcher = DynamicBatcher(lambda texts: [t.upper() for t in texts], max_batch=32)
    result = await batcher.submit("hello")      # "HELLO", computed with its neighbours
    await batcher.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["BatcherClosed", "BatchStats", "DynamicBatcher"]


class BatcherClosed(RuntimeError):
    """The batcher was closed: the request was not computed."""


@dataclass
class BatchStats:
    """Counters of one batcher (requests, batches, the largest batch)."""

    requests: int = 0
    batches: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class DynamicBatcher:
    """Collects :meth:`submit` calls into batches for ``fn(items) -> results`` (one result per
    item, in order), run in ``workers`` threads; ``on_batch(size, seconds)`` is called on the
    loop after each batch (metrics)."""

    def __init__(
        self,
        fn: Callable[[list], Sequence],
        *,
        max_batch: int = 32,
        window_s: float = 0.0015,
        workers: int = 1,
        name: str = "batch",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or workers < 1 or window_s < 0:
            raise ValueError(
                f"DynamicBatcher: max_batch and workers must be >= 1 and window_s >= 0, got "
                f"max_batch={max_batch}, workers={workers}, window_s={window_s}"
            )
        self.fn = fn
        self.max_batch = int(max_batch)
        self.window_s = float(window_s)
        self.workers = int(workers)
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=f"dingskill-{name}"
        )
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._running = 0  # batches being computed
        self._computing = 0  # requests in those batches
        self._timer: asyncio.TimerHandle | None = None
        self._window_over = False
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def depth(self) -> int:
        """Requests waiting for a batch or being computed."""
        return len(self._pending) + self._computing

    async def submit(self, item):
        """The result of ``item`` computed in a batch with its concurrent neighbours."""
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        self._idle.clear()
        if len(self._pending) >= self.max_batch:
            self._window_over = True
            self._dispatch(loop)
        elif self._timer is None and not self._window_over:
            self._timer = loop.call_later(self.window_s, self._close_window, loop)
        return await fut

    def _close_window(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._window_over = True
        self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand batches to free workers while the window is over and requests wait."""
        while self._pending and self._window_over and self._running < self.workers:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # cancelled: drop
            if not batch:
                continue
            self._running += 1
            self._computing += len(batch)
            self.stats.requests += len(batch)
            self.stats.batches += 1
            self.stats.largest = max(self.stats.largest, len(batch))
            work = loop.run_in_executor(self._pool, _timed, self.fn, [i for i, _ in batch])
            work.add_done_callback(lambda w, b=batch: self._finished(loop, w, b))
        if not self._pending:
            self._window_over = False  # the next request opens a new window
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if not self._pending and not self._running:
            self._idle.set()

    def _finished(self, loop, work: asyncio.Future, batch: list) -> None:
        self._running -= 1
        self._computing -= len(batch)
        exc = work.exception() if not work.cancelled() else BatcherClosed("cancelled")
        if exc is None:
            results, seconds = work.result()
            if len(results) != len(batch):
                exc = RuntimeError(
                    f"batch function returned {len(results)} results for {len(batch)} items"
                )
        for k, (_, fut) in enumerate(batch):
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(results[k])
        if exc is None and self.on_batch is not None:
            self.on_batch(len(batch), seconds)
        if self._pending:
            # requests that gathered while every worker was busy: their window is over
            self._window_over = True
        self._dispatch(loop)

    async def close(self) -> None:
        """Finish the batches being computed, refuse the waiting ones, stop the threads."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._pending = self._pending, []
        for _, fut in waiting:
            if not fut.done():
                fut.set_exception(BatcherClosed("the batcher was closed before this request ran"))
        if self._running:
            await self._idle.wait()
        self._pool.shutdown(wait=False)


def _timed(fn, items: list) -> tuple[Sequence, float]:
    import time

    t0 = time.perf_counter()
    out = fn(items)
    return out, time.perf_counter() - t0
