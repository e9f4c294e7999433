"""``dingskill chat`` for a newcomer: an input prompt on a terminal, the sender's name from
``--nick`` or the OS user in replies (never "terminal-user"), no prompt when piped."""

from __future__ import annotations

import getpass
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAQ = str(ROOT / "skills" / "faq-en")
SCALE = float(os.environ.get("DINGSKILL_TEST_TIME_SCALE", "1"))


def _chat(*args: str, text: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", "chat", FAQ, *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=180 * SCALE,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_replies_use_the_nick_or_the_os_user():
    assert "Ann" in _chat("--nick", "Ann", text="hello\n")
    out = _chat(text="hello\n")
    assert getpass.getuser() in out and "terminal-user" not in out
    assert "you>" not in out  # piped: no prompt, the line is echoed instead
    assert "> hello" in out


def _reap(pid: int) -> int:
    """The child's wait status; killed when it has not ended within a generous limit."""
    deadline = time.monotonic() + 30 * SCALE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, 9)
    return os.waitpid(pid, 0)[1]


def test_a_terminal_gets_an_input_prompt():
    pid, fd = pty.fork()
    if pid == 0:  # the child: dingskill chat on a pseudo-terminal
        os.execv(sys.executable, [sys.executable, "-m", "dingskill.cli.main", "chat", FAQ])
    out = b""
    try:
        deadline = time.monotonic() + 180 * SCALE
        sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"you> " in out:
                os.write(fd, b"hello\n")
                sent = True
            if sent and out.count(b"you> ") >= 2:
                os.write(fd, b"\x04")  # Ctrl-D: the end of input
                break
    finally:
        status = _reap(pid)
        os.close(fd)
    text = out.decode("utf-8", "replace")
    assert "you> " in text and ("How can I help" in text or "what can I do" in text), text
    assert os.waitstatus_to_exitcode(status) == 0, text
