"""``dingskill demo`` (what `make demo` runs): succeeds, ends with next steps, leaves no
temporary folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_succeeds_says_what_next_and_cleans_up(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for key in ("DINGSKILL_APP_KEY", "DINGSKILL_APP_SECRET", "DINGTALK_OPENAPI_ENDPOINT"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-m", "dingskill.cli.main", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "demo succeeded" in out.stdout and "next steps:" in out.stdout
    assert "dingskill chat" in out.stdout.split("next steps:")[1]
    assert not list(tmp_path.glob("dingskill-demo-*")), list(tmp_path.iterdir())
