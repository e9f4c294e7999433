"""One ``dingskill run`` as several worker processes (``processes.count``).

A single runtime process is held to one core by the interpreter lock. With
``processes.count`` above one (0: one per core), ``dingskill run`` becomes a small
supervisor that starts that many workers, each a whole runtime with its own Stream
connection: the platform hands every message to one of the connections, so the workers
share the traffic with no forwarding between them. They share the storage (the SQLite file
in WAL mode, or Redis), so de-duplication, rate limits and conversation contexts are
common, and the turns of one conversation take a lease in the store so that they run one at
a time across processes too. Worker 0 alone serves HTTP (health, metrics summed over every
worker, admin) and writes the periodic reports; every worker appends to the one audit chain
(a file lock) and picks up skill installs from the shared home.

The supervisor forwards SIGTERM / SIGINT (each worker finishes its messages in flight), and
starts again a worker that dies, waiting 1 s, then 2 s, ... up to
``processes.restart_max_backoff_s``. A worker that fails within its first seconds (a
configuration error, a port in use: an exit code of its own, not a signal) stops the whole
command with that code: starting it again would only fail again.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from .config import ConfigError, RuntimeConfig

__all__ = [
    "WORKER_ENV",
    "WorkerRole",
    "Supervisor",
    "check_processes",
    "preflight",
    "process_count",
    "resolve_count",
    "sweep_stale_metrics",
    "worker_role",
]

log = logging.getLogger("dingskill.runtime.supervisor")

WORKER_ENV = "DINGSKILL_WORKER"  # "index/count", set by the supervisor in each worker
EARLY_EXIT_S = 10.0  # a worker failing this soon after its start fails the whole command
STEADY_S = 60.0  # a worker that lived this long starts again after the shortest wait


@dataclass(frozen=True)
class WorkerRole:
    """Which worker of how many this process is (worker 0 serves HTTP and the reports)."""

    index: int
    count: int

    @property
    def primary(self) -> bool:
        return self.index == 0

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def worker_role(environ: dict | None = None) -> WorkerRole | None:
    """This process's role from ``DINGSKILL_WORKER`` ("index/count"), or None when it was not
    started by a supervisor."""
    raw = (os.environ if environ is None else environ).get(WORKER_ENV)
    if not raw:
        return None
    try:
        index, count = (int(x) for x in raw.split("/"))
    except ValueError:
        raise ConfigError(
            f"{WORKER_ENV}={raw!r}: expected 'index/count' (set by `dingskill run` itself; "
            "unset it to run a single process)"
        ) from None
    if not 0 <= index < count:
        raise ConfigError(f"{WORKER_ENV}={raw!r}: index must be in 0..count-1")
    return WorkerRole(index, count)


def process_count(config: RuntimeConfig) -> int:
    """Worker processes to start: ``processes.count``, 0 meaning one per usable core."""
    return resolve_count(int(config.get("processes.count")))


def resolve_count(n: int) -> int:
    """``n`` worker processes, 0 meaning one per core this process may run on."""
    if n == 0:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            n = os.cpu_count() or 1
    return max(1, n)


def check_processes(config: RuntimeConfig, count: int) -> None:
    """Refuse settings several workers cannot serve correctly, saying what to change."""
    if count <= 1:
        return
    ch = config["channels"]["enterprise_chat"]
    if not ch["enabled"] or ch["mode"] != "stream":
        raise ConfigError(
            f"processes.count: {count} worker processes need channels.enterprise_chat.mode: "
            "stream (each worker holds its own Stream connection); in webhook mode run one "
            "process per port behind a load balancer, or set processes.count: 1"
        )
    if not config.app_key or not config.app_secret:  # before starting anything
        raise ConfigError(
            "channels.enterprise_chat.auth: app_key and app_secret are required for stream "
            "mode (or DINGSKILL_APP_KEY / DINGSKILL_APP_SECRET)"
        )
    if config.get("storage.type") == "memory":
        raise ConfigError(
            f"processes.count: {count} worker processes need storage shared between them: "
            "storage.type sqlite (the default, one file) or redis, not memory"
        )


METRICS_PREFIX = "dingskill-metrics-"  # the workers' metric files, one folder per supervisor
OWNER_FILE = "supervisor.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_metrics(folder: str | None = None) -> int:
    """Remove the metrics folders of supervisors that are gone without cleaning up (killed
    outright: SIGKILL, the OOM killer); returns how many. A folder counts as stale when the
    supervisor whose pid it records no longer runs; folders without that record, of a
    running process, of another user, and symbolic links (a shared /tmp: never followed) are
    left alone."""
    root = folder or tempfile.gettempdir()
    removed = 0
    try:
        names = [n for n in os.listdir(root) if n.startswith(METRICS_PREFIX)]
    except OSError:
        return 0
    for name in names:
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            with open(os.path.join(path, OWNER_FILE)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if pid > 0 and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _stop_with_parent() -> None:
    """In the worker, before it runs: SIGTERM when the supervisor dies, however it dies (a
    killed supervisor must not leave workers serving on their own). Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def preflight(config: RuntimeConfig) -> None:
    """What every worker would check first, checked once before any starts: the store
    answers (:class:`~dingskill.runtime.stores.StoreUnavailable`) and the Stream endpoint
    accepts connections (:class:`~dingskill.runtime.channels.stream.EndpointUnreachable`)."""
    from .channels.stream import DEFAULT_ENDPOINT, check_reachable
    from .stores import make_store

    store = make_store(config)
    await store.connect()
    await store.close()
    endpoint = config["channels"]["enterprise_chat"].get("endpoint") or os.environ.get(
        "DINGTALK_OPENAPI_ENDPOINT", DEFAULT_ENDPOINT
    )
    await check_reachable(endpoint)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff_s: float = 1.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Start ``count`` workers running ``argv``, keep them running, stop them together.

    ``argv``: the worker command (the same ``dingskill run`` arguments); each worker gets
    ``DINGSKILL_WORKER=index/count`` and a private ``PROMETHEUS_MULTIPROC_DIR``."""

    def __init__(
        self,
        argv: list[str],
        count: int,
        max_backoff_s: float = 30.0,
        stop_timeout_s: float = 60.0,
        environ: dict | None = None,
    ) -> None:
        if count < 2:
            raise ValueError(f"Supervisor: count must be >= 2, got {count}")
        self.argv = list(argv)
        self.count = count
        self.max_backoff_s = max_backoff_s
        self.stop_timeout_s = stop_timeout_s
        self.environ = dict(os.environ if environ is None else environ)
        self.workers = [_Worker(i) for i in range(count)]
        self._stop = threading.Event()
        self._metrics_dir: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM / SIGINT (returns 0) or until a worker fails at start (returns
        its exit code)."""
        previous = {
            sig: signal.signal(sig, lambda *_: self._stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        sweep_stale_metrics()
        self._metrics_dir = tempfile.mkdtemp(prefix=METRICS_PREFIX)
        with open(os.path.join(self._metrics_dir, OWNER_FILE), "w") as f:
            f.write(str(os.getpid()))
        try:
            for w in self.workers:
                self._start(w)
            log.info(
                "supervisor started",
                extra={"workers": self.count, "pids": [w.proc.pid for w in self.workers]},
            )
            code = self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log.info("supervisor stopped", extra={"exit_code": code})
        return code

    def _start(self, w: _Worker) -> None:
        env = {
            **self.environ,
            WORKER_ENV: f"{w.index}/{self.count}",
            "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir,
        }
        w.proc = subprocess.Popen(self.argv, env=env, preexec_fn=_stop_with_parent)
        w.started = time.monotonic()
        w.restart_at = None

    def _watch(self) -> int:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            for w in self.workers:
                if w.proc is None:
                    if w.restart_at is not None and now >= w.restart_at:
                        self._start(w)
                        log.warning(
                            "worker started again",
                            extra={"worker": w.index, "pid": w.proc.pid, "restarts": w.restarts},
                        )
                    continue
                code = w.proc.poll()
                if code is None:
                    continue
                lived = now - w.started
                self._forget(w.proc.pid)
                w.proc = None
                if code > 0 and lived < EARLY_EXIT_S and w.restarts == 0:  # not a signal
                    print(
                        f"error: worker {w.index} of {self.count} exited with code {code} "
                        f"{lived:.1f} s after its start (its own message is above); "
                        "stopping every worker",
                        file=sys.stderr,
                        flush=True,
                    )
                    return code or 1
                if lived >= STEADY_S:
                    w.backoff_s = 1.0
                w.restarts += 1
                w.restart_at = now + w.backoff_s
                log.error(
                    "worker exited; starting it again",
                    extra={
                        "worker": w.index,
                        "exit_code": code,
                        "lived_s": round(lived, 1),
                        "wait_s": w.backoff_s,
                    },
                )
                w.backoff_s = min(w.backoff_s * 2, self.max_backoff_s)
        return 0

    def _forget(self, pid: int) -> None:
        """A dead worker's live gauges leave /metrics (its counters stay summed)."""
        try:
            from .metrics import worker_exited
        except ImportError:  # metrics without multiprocess support
            return
        try:
            worker_exited(pid, self._metrics_dir)
        except Exception as exc:  # noqa: BLE001 - metrics bookkeeping never stops the bot
            log.warning("could not forget a dead worker's metrics", extra={"error": str(exc)})

    def _stop_all(self) -> None:
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for p in live:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.stop_timeout_s
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(
                    "worker did not stop in time; killing it",
                    extra={"pid": p.pid, "timeout_s": self.stop_timeout_s},
                )
                p.kill()
                p.wait()
        for w in self.workers:
            w.proc = None
