"""``CommandBatcher``: the Redis commands a process issues in one turn of its event loop travel
together, in one pipeline (one write, one read, one pooled connection), instead of one round
trip each.

A broker worker or a runtime handles dozens of messages at once, and every message asks Redis
for its dedup claim, its context, its rate buckets and its dedup states: one command per
round trip, each paying a connection checkout, a socket write, an event-loop wake-up and a
read. Here a command is queued and the caller awaits its own result; the queue is sent at the
next turn of the loop (what clients call auto-pipelining). Nothing changes for a caller:
every command gets its own reply or its own error, commands leave in the order they were
issued, and a connection failure fails every command of that pipeline (as it would have
failed each alone). Not a transaction: no command waits for or depends on another.

While ``max_inflight`` pipelines are on the wire, new commands gather for the next one, so
batches grow with the load and a lone command waits at most one turn of the loop.

Scripts go as ``EVALSHA``; a server that lost them (restart, ``SCRIPT FLUSH``) answers
``NOSCRIPT`` and that command alone is sent again by the script itself (``EVAL`` and a load)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["CommandBatcher"]


class CommandBatcher:
    """Coalesces the commands issued on ``client`` (a ``redis.asyncio.Redis``) in one loop
    turn into one non-transactional pipeline."""

    def __init__(self, client, max_inflight: int = 1, max_batch: int = 512) -> None:
        self.client = client
        self.max_inflight = int(max_inflight)
        self.max_batch = int(max_batch)
        self._pending: list[tuple[Callable, asyncio.Future]] = []
        self._inflight = 0
        self._scheduled = False
        self.batches = 0  # pipelines sent (a test and the benchmark read them)
        self.commands = 0

    async def execute(self, *args, **options):
        """``client.execute_command(*args, **options)``, sent with its neighbours."""
        return await self.submit(*args, **options)

    def submit(self, *args, **options) -> asyncio.Future:
        """:meth:`execute` without a coroutine: the command is queued now (commands queued
        one after another in a turn leave together, in that order); await the future."""
        return self._queue(lambda pipe: pipe.execute_command(*args, **options))

    async def script(self, script, keys: list, args: list):
        """The result of a registered script (``client.register_script``) on ``keys``/``args``."""
        from redis.exceptions import NoScriptError

        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # not loaded (yet, or any more): this command alone, loading it
            return await script(keys=keys, args=args)

    def _queue(self, add: Callable) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((add, fut))
        if not self._scheduled and self._inflight < self.max_inflight:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._pending and self._inflight < self.max_inflight:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            batch = [(add, fut) for add, fut in batch if not fut.done()]  # cancelled: drop
            if not batch:
                continue
            self._inflight += 1
            loop.create_task(self._send(loop, batch))

    async def _send(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for add, _ in batch:
                add(pipe)
            self.batches += 1
            self.commands += len(batch)
            try:
                results = await pipe.execute(raise_on_error=False)
            except BaseException as exc:  # noqa: BLE001 - connection lost: every command fails
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self._inflight -= 1
            if self._pending and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush, loop)
