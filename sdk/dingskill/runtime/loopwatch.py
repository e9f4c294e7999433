"""Event-loop stall watch: how late the loop runs a timer (``dingskill_event_loop_lag_seconds``)
and, for stalls over a threshold, the stack the loop's thread was in (logged once per stall).

Every message of a runtime shares one event loop, so anything that holds it (a synchronous
disk write, a full garbage collection, a CPU-heavy skill) delays every message in flight:
this is where a p99 far above the p50 comes from. A watchdog thread samples the loop thread's
stack while it is stuck, so the log names the culprit instead of only the symptom."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

__all__ = ["LoopWatch"]

log = logging.getLogger("dingskill.runtime")


class LoopWatch:
    """Measures loop lag every ``interval_s``; logs stacks of stalls longer than ``stall_s``."""

    def __init__(self, metrics=None, interval_s: float = 0.01, stall_s: float = 0.05) -> None:
        self.metrics, self.interval_s, self.stall_s = metrics, interval_s, stall_s
        self.max_lag_s = 0.0
        self.stalls = 0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()

    async def run(self) -> None:
        """The loop side: tick, and record how late each tick came."""
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="loopwatch", daemon=True)
        self._thread.start()
        try:
            while True:
                t = time.monotonic()
                self._beat = t
                await asyncio.sleep(self.interval_s)
                lag = max(0.0, time.monotonic() - t - self.interval_s)
                self.max_lag_s = max(self.max_lag_s, lag)
                if self.metrics is not None:
                    self.metrics.loop_lag.observe(lag)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        """The watchdog side: while the loop has not ticked for ``stall_s``, sample its stack."""
        reported = None
        while not self._stop.wait(self.stall_s / 2):
            beat = self._beat
            stuck = time.monotonic() - beat - self.interval_s
            if stuck < self.stall_s or reported == beat:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            reported = beat
            self.stalls += 1
            stack = "".join(traceback.format_stack(frame, limit=12))
            log.warning(
                "event loop stalled",
                extra={"stalled_ms": round(stuck * 1000), "stack": stack},
            )
