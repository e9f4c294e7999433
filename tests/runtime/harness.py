"""Real processes for the runtime tests: redis-server, the emulator, `dingskill run`."""

from __future__ import annotations

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


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


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
        self.proc = subprocess.Popen(
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
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)

        def up():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(up, 10, what="redis-server up")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
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
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(self.config_path)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"runtime exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, what="runtime /healthz")
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
        if self.proc is None:
            return 0
        if sig == "kill":
            self.proc.kill()
        else:
            self.proc.terminate()
        code = self.proc.wait(30)
        self.proc = None
        return code
