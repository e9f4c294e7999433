"""Every ```bash block in README.md and docs/*.md runs as written.

The blocks of one document run in order in one ``bash -euo pipefail``, in a copy of the
project (nothing is written into the working tree), with ``dingskill`` meaning this checkout's
command line, a fresh ``DINGSKILL_HOME`` and the local DingTalk emulator standing in for
DingTalk (``DINGTALK_OPENAPI_ENDPOINT``; it knows the docs' apps, placeholders included).

A foreground ``dingskill run`` without ``--port`` (a server a reader stops with Ctrl-C) runs on
a free port for a few seconds, then gets SIGINT and must exit 0. A block preceded by
``<!-- docs-test: skip (reason) -->`` is not run (the README's `make demo` / `make test`: they
are the demo and this suite).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dingskill.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import free_port, scaled  # noqa: E402

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^(<!-- docs-test: skip[^\n]*-->\n)?```bash\n(.*?)^```", re.S | re.M)
# the apps the docs use, as written (placeholders too): the emulator accepts them
APPS = {"ding...": "...", "dingdemo": "demo-secret"}
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "dist", "build"
)

PRELUDE = r"""
dingskill() {
  if [ "${1:-}" = run ] && [[ " $* " != *" --port "* ]]; then
    # the docs' foreground server: a while on a free port, then Ctrl-C
    timeout -s INT --preserve-status "$DOCTEST_RUN_S" \
      "$DOCTEST_PY" -m dingskill.cli.main "$@" --port "$DOCTEST_PORT"
    return $?
  fi
  "$DOCTEST_PY" -m dingskill.cli.main "$@"
}
"""


def _blocks(doc: Path) -> list[tuple[int, str]]:
    text = doc.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(2))
        for m in BLOCK.finditer(text)
        if not m.group(1)
    ]


@pytest.fixture(scope="module")
def emulator():
    with Emulator(dict(APPS)) as emu:
        yield emu


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("docs") / "project"
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE, symlinks=True)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc", [d for d in DOCS if _blocks(d)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_shell_examples_run(doc, project_copy, emulator, tmp_path):
    script = PRELUDE + "".join(f"\n# --- {doc.name}:{line}\n{body}" for line, body in _blocks(doc))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "sdk"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "DINGSKILL_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "DINGTALK_OPENAPI_ENDPOINT": emulator.url,
        "MPLBACKEND": "Agg",
        "DOCTEST_PY": sys.executable,
        "DOCTEST_PORT": str(free_port()),
        "DOCTEST_RUN_S": str(round(scaled(8))),
    }
    for key in ("DINGSKILL_APP_KEY", "DINGSKILL_APP_SECRET", "DINGSKILL_DATA_KEYS"):
        env.pop(key, None)
    log = tmp_path / "out.log"
    with log.open("w") as fh:
        # own process group: what the docs start in the background is stopped afterwards
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=project_copy,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = proc.wait(scaled(300))
        except subprocess.TimeoutExpired:
            code = "timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, f"{doc.name}: exit {code}\n--- output\n{output[-4000:]}"
