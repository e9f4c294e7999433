"""Real processes for the broker tests: `dingskill gateway | worker | audit-writer`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

APP = ("dingtestapp", "test-app-secret")


def scale() -> float:
    return float(os.environ.get("DINGSKILL_TEST_TIMEOUT_SCALE", "1") or 1)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"):
    timeout *= scale()
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


class Service:
    """One `dingskill <command> --config FILE` process with its own config and log."""

    def __init__(self, command: str, workdir: Path, config: dict, env: dict | None = None) -> None:
        from dingskill.runtime.broker.node import _free_port

        self.command, self.dir = command, workdir
        self.port = _free_port()
        config = json.loads(json.dumps(config))
        config.setdefault("server", {})["port"] = self.port
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{command}-{self.port}.json"
        self.config_path.write_text(json.dumps(config))
        self.log = workdir / f"{command}-{self.port}.log"
        self.env = {
            **os.environ,
            "DINGSKILL_APP_KEY": APP[0],
            "DINGSKILL_APP_SECRET": APP[1],
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dingskill.cli.main",
                self.command,
                "--config",
                str(self.config_path),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        return self

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60) -> Service:
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.command} exited {self.proc.returncode}:\n{self.output()}"
                )
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, timeout, 0.1, what=f"{self.command} /readyz")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.output()}") from None
        return self

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key = line.rsplit(" ", 1)[0]
            if key == name or (key.startswith(name + "{") and (not labels or labels in key)):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: str = "term") -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if sig == "kill" else signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code
