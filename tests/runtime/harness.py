"""Real processes for the runtime tests: redis-server, the emulator, `dingskill run`."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timeout_scale() -> float:
    """How much longer than on an idle machine waits may take.

    ``DINGSKILL_TEST_TIMEOUT_SCALE`` when set (CI on a slow runner: ``3``), else a factor from
    the 1-minute load average per core: 1 when idle, 3 with two busy processes per core.
    """
    env = os.environ.get("DINGSKILL_TEST_TIMEOUT_SCALE")
    if env:
        return max(float(env), 0.1)
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # not on every platform
        return 1.0
    return min(max(1.0, 1.0 + load), 6.0)


def scaled(seconds: float) -> float:
    """``seconds`` stretched by :func:`timeout_scale` (for waits on real processes)."""
    return seconds * timeout_scale()


def wait_until(
    predicate,
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
    output=None,
):
    """Polls ``predicate`` until it is truthy; ``timeout`` is scaled by the machine's load.

    ``output`` (a callable returning text) is added to the error, e.g. the process's own log.
    """
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- output ---\n{output()}" if output else ""
            raise TimeoutError(f"{what} not reached within {limit:.0f} s{detail}")
        time.sleep(interval)


# Every process a test starts, registered before anyone waits on it; conftest kills what is
# left at the end of the session (a failed start-up never outlives pytest).
LIVE: set[subprocess.Popen] = set()


def spawn(args: list[str], **kw) -> subprocess.Popen:
    """``subprocess.Popen`` registered in :data:`LIVE` for clean-up."""
    proc = subprocess.Popen(args, **kw)
    LIVE.add(proc)
    return proc


def reap(proc: subprocess.Popen | None, sig: str = "term", wait: float = 30) -> int:
    """Stops ``proc`` (``term`` then ``kill`` after ``wait`` s) and forgets it."""
    if proc is None:
        return 0
    LIVE.discard(proc)
    if proc.poll() is None:
        proc.kill() if sig == "kill" else proc.terminate()
    try:
        return proc.wait(scaled(wait))
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def kill_all() -> None:
    """Kills every registered process still running (session finaliser)."""
    for proc in list(LIVE):
        reap(proc, "kill", 10)


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file (empty when it does not exist yet)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


class RedisServer:
    """A real redis-server on a free port in a temporary directory."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server not found: run `make setup` (scripts/setup.sh installs it)"
            )
        self.exe, self.dir, self.port = exe, workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "redis.log"
        self.proc = spawn(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis(port=self.port)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}: {tail(self.log)}")
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(up, 10, what="redis-server up", output=lambda: tail(self.log))
        return self

    def flush(self) -> None:
        """Empties every database (a shared server between tests)."""
        import redis

        redis.Redis(port=self.port).flushall()

    def stop(self) -> None:
        reap(self.proc, "term", 10)
        self.proc = None


class RuntimeProcess:
    """`dingskill run` in a subprocess, configured against an emulator."""

    def __init__(
        self,
        workdir: Path,
        home: Path,
        emulator_url: str,
        app=("dingtestapp", "test-app-secret"),
        storage: dict | None = None,
        extra: dict | None = None,
        env: dict | None = None,
    ) -> None:
        self.port = free_port()
        cfg = {
            "server": {"port": self.port},
            "storage": storage or {"type": "sqlite", "path": str(workdir / "runtime.db")},
            "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emulator_url}},
            "skills": {"home": str(home), "reload_interval_s": 0.2},
            "audit": {"path": str(workdir / "audit" / "messages.jsonl")},
        }
        for k, v in (extra or {}).items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"runtime-{self.port}.json"
        self.config_path.write_text(json.dumps(cfg))
        self.log = workdir / f"runtime-{self.port}.log"
        self.env = {
            **os.environ,
            "DINGSKILL_APP_KEY": app[0],
            "DINGSKILL_APP_SECRET": app[1],
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RuntimeProcess:
        self.proc = spawn(
            [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(self.config_path)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtime exited {self.proc.returncode}: {tail(self.log)}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, 30, what=f"runtime {self.url}/healthz", output=lambda: tail(self.log))
        except BaseException:
            self.stop("kill")
            raise
        return self

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def metric(self, name: str, labels: str = "") -> float:
        prefix = f"{name}{{{labels}}}" if labels else name
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(prefix + " ") or (
                not labels and line.startswith(name + "{") and False
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: str = "term") -> int:
        code = reap(self.proc, sig, 30)
        self.proc = None
        return code


atexit.register(kill_all)
