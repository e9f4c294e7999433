"""Every ```python block in README.md and docs/*.md runs (blocks of one file share a namespace).

Blocks that only show an API without running (they need a live DingTalk app, say) are fenced
as ```pycon or ```text instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ARCHITECTURE.md holds contract sketches (signatures), not examples
DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "ARCHITECTURE.md"),
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if BLOCK.search(d.read_text(encoding="utf-8"))], ids=lambda p: p.name
)
def test_python_examples_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("DINGSKILL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__doc_example__"}
    text = doc.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        line = text[: match.start()].count("\n") + 2
        code = compile(match.group(1), f"{doc}:{line}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
    assert os.getcwd() == str(ROOT)
