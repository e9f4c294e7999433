"""Fixtures for the emulator tests: emulators on free ports and SDK-only bots in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from dingskill.emulator import Emulator

BOTS = Path(__file__).with_name("sdk_bots.py")
KEY, SECRET = "dingtestkey", "test-secret"
SCALE = float(os.environ.get("DINGSKILL_TEST_TIMEOUT_SCALE", "1") or 1)


def t(seconds: float) -> float:
    """A time limit scaled for slow machines (``DINGSKILL_TEST_TIMEOUT_SCALE``)."""
    return seconds * SCALE


class Bot:
    """An SDK-only bot (``sdk_bots.py``) in a subprocess; its output is kept for failures."""

    def __init__(self, url: str, topics: str, mode: str, key: str, secret: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="sdk-bot-", suffix=".log", delete=False)
        env = {**os.environ, "DINGTALK_OPENAPI_ENDPOINT": url}
        self.proc = subprocess.Popen(
            [sys.executable, str(BOTS), key, secret, "--topics", topics, "--mode", mode],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        path = Path(self.log.name)
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()
            os.unlink(self.log.name)


@pytest.fixture
def start_bot(request):
    """``start_bot(emu, topics=..., mode=...)``: start a bot (stopped at teardown) and wait for
    its connection; on failure the bot's own output is shown."""
    bots: list[Bot] = []

    def start(emu: Emulator, topics="robot,events,cards,graph", mode="answer", connections=None):
        before = emu.connections()
        bot = Bot(emu.url, topics, mode, KEY, SECRET)
        bots.append(bot)  # registered before waiting on it
        try:
            emu.wait_connections(connections or before + 1, timeout=t(30))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- bot output ---\n{bot.output()}") from exc
        return bot

    yield start
    failed = getattr(request.node, "rep_call", None)
    for b in bots:
        if failed is not None and failed.failed:
            print(f"--- bot output ---\n{b.output()}")
        b.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def make_emulator():
    """``make_emulator(**options)``: a started emulator on a free port, stopped at teardown."""
    started: list[Emulator] = []

    def make(**options) -> Emulator:
        emu = Emulator({KEY: SECRET}, **options)
        started.append(emu)
        emu.start()
        return emu

    yield make
    for e in started:
        e.stop()
