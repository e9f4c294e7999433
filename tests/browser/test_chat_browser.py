"""The chat notebook served by Voila and driven by a real headless Chromium (Debian's
/usr/bin/chromium through Playwright; no browser download): type Chinese, press Enter, see
the reply and its intent; then a multi-turn leave request. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: run `make setup` (scripts/setup.sh installs Debian's chromium)"
        )
    port = _port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "DINGSKILL_HOME": str(tmp_path_factory.mktemp("home"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            str(ROOT / "notebooks" / "03_chat_with_your_skill.ipynb"),
        ],
        cwd=ROOT / "notebooks",
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    # wait for the port, not for a page: every GET of "/" starts a kernel and runs the
    # notebook, and on a slow machine a short-timeout GET gives up and starts another
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"voila did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)  # polling the port until the server answers
    yield url
    proc.terminate()
    proc.wait(20)


def test_chat_in_a_real_browser(voila_url):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.goto(voila_url, timeout=120_000)
        box = page.locator(".ds-input input")
        expect(box).to_be_visible(timeout=120_000)
        transcript = page.locator(".ds-transcript").first

        box.fill("我想看这个月的工资条")
        box.press("Enter")
        expect(transcript).to_contain_text("我想看这个月的工资条", timeout=30_000)
        expect(transcript.locator("code.ds-intent", has_text="payslip").last).to_be_visible(
            timeout=30_000
        )
        expect(transcript).to_contain_text("「薪酬」应用")

        for text, expected in [
            ("我要请假", "年假、病假"),
            ("病假", "从哪天开始"),
            ("明天", "一共请几天"),
            ("一天", "病假申请"),
        ]:
            expect(box).to_have_value("", timeout=30_000)  # the widget cleared the last message
            box.fill(text)
            box.press("Enter")
            expect(transcript).to_contain_text(expected, timeout=30_000)
        expect(transcript.locator(".ds-meta").last).to_contain_text("ask_leave")
        page.screenshot(path=str(ARTIFACTS / "chat_widget.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "chat_widget.png").stat().st_size > 10_000
