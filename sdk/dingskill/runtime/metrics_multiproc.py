"""Metrics of several worker processes summed into one ``/metrics`` (prometheus_client's
multiprocess mode).

A supervisor that runs N workers puts ``PROMETHEUS_MULTIPROC_DIR`` (one fresh, empty
directory shared by the workers of one run) in each worker's environment before it starts.
prometheus_client then keeps every metric of the worker in a memory-mapped file of that
directory; the process serving ``/metrics`` reads them all and adds them up. When a worker
exits, the supervisor calls :func:`worker_exited` so that its ``live*`` gauges (in-flight
messages, queues) stop counting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import ProcessCollector, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["ENV_VAR", "MultiprocessDirError", "multiprocess_dir", "AllWorkers", "worker_exited"]

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


class MultiprocessDirError(RuntimeError):
    """``PROMETHEUS_MULTIPROC_DIR`` is set but cannot be used."""


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None when ``PROMETHEUS_MULTIPROC_DIR`` is unset.

    Raises :class:`MultiprocessDirError` if the variable names no directory, or was set after
    prometheus_client was imported (it picks its storage once, at import).
    """
    path = os.environ.get(ENV_VAR)
    if path is None:
        return None
    if not path or not os.path.isdir(path):
        raise MultiprocessDirError(
            f"{ENV_VAR}={path!r} is not an existing directory: create it (empty) before the "
            f"worker starts, or unset {ENV_VAR} to run with one process's metrics"
        )
    if not values.ValueClass._multiprocess:
        raise MultiprocessDirError(
            f"{ENV_VAR}={path!r} was set after prometheus_client was imported; it must be in "
            "the worker's environment when the process starts"
        )
    return path


class AllWorkers:
    """Collector: every worker's metrics from ``directory``, summed, then the ``process_*``
    figures (CPU, memory, fds) of the process that collects (they cannot be summed from the
    files), leaving out any family whose name the files already gave."""

    def __init__(self, directory: str) -> None:
        self._files = MultiProcessCollector(None, path=directory)
        self._process = ProcessCollector(registry=None)

    def collect(self) -> Iterable[Metric]:
        families = list(self._files.collect())
        names = {f.name for f in families}
        yield from families
        yield from (f for f in self._process.collect() if f.name not in names)


def worker_exited(pid: int, directory: str | None = None) -> None:
    """Forget the ``live*`` gauges of the worker ``pid`` (its counters and histograms stay in
    the totals). ``directory`` defaults to ``PROMETHEUS_MULTIPROC_DIR``; without either, or if
    the directory is gone, nothing to do."""
    directory = directory or os.environ.get(ENV_VAR)
    if directory and os.path.isdir(directory):
        mark_process_dead(pid, directory)
