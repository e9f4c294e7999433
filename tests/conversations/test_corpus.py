"""The project's conversation corpus: every case file in this folder, replayed with the three
example skills loaded together (what `make demo` suggests) and a fixed date, through the
runtime's one Pipeline. Task success (every turn of a conversation as expected) must be at
least 98 % per language; the failing turns are listed when it is not.

The same figures from the command line (README.md in this folder):
dingskill test-conversations skills/hr-assistant skills/faq-en skills/it-helpdesk \
    tests/conversations --today 2026-12-09"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from dingskill.notebook.conversation_report import run_conversations
from dingskill.skills import Skill

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TODAY = dt.date(2026, 12, 9)  # a Wednesday (as the dialogue corpus): "next Monday" is 2026-12-14
SKILLS = ("hr-assistant", "faq-en", "it-helpdesk")
FLOOR = 0.98


@pytest.fixture(scope="module")
def report():
    skills = [Skill.load(ROOT / "skills" / name) for name in SKILLS]
    return run_conversations(skills, HERE, today=TODAY)


def test_the_corpus_holds_enough_conversations_per_language(report):
    mine = {lang: 0 for lang in ("zh", "en")}
    for f in sorted(HERE.glob("*.jsonl")):
        names = {
            (json.loads(line)["case"], json.loads(line).get("lang"))
            for line in f.read_text("utf-8").splitlines()
            if line.strip()
        }
        if f.name.split("_")[0] in ("arbitration", "oos", "long"):
            mine["en" if f.stem.endswith("_en") else "zh"] += len(names)
    assert mine["zh"] >= 30 and mine["en"] >= 30, mine
    assert {"zh", "en"} <= set(report.scores)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_task_success_per_language(report, lang):
    score = report.scores[lang]
    failing = "\n".join(f"{f}:{m}" for f, m in report.failures)
    assert score.task_success >= FLOOR, (
        f"{lang}: task success {score.task_success:.1%} of {score.conversations} "
        f"conversations (turn accuracy {score.turn_accuracy:.1%}); failing turns:\n{failing}"
    )


def test_the_command_prints_the_table_and_json(capsys, tmp_path):
    from dingskill.cli.main import main

    skills = [str(ROOT / "skills" / name) for name in SKILLS]
    cases = str(HERE / "oos_help_en.jsonl")
    assert main(["test-conversations", *skills, cases, "--today", "2026-12-09"]) == 0
    out = capsys.readouterr().out
    assert "task success" in out and "turn accuracy" in out and "all turns match" in out
    assert main(["test-conversations", *skills, cases, "--today", "2026-12-09", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    en = report["languages"]["en"]
    assert en["task_success"] == 1.0 and en["conversations"] >= 10 and report["failing_turns"] == []
    # a missed turn: listed with its file and line, exit 1
    wrong = json.loads((HERE / "oos_help_en.jsonl").read_text("utf-8").splitlines()[0])
    wrong["expected_intent"] = "payslip"
    path = tmp_path / "wrong_case.jsonl"
    path.write_text(json.dumps(wrong, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["test-conversations", *skills, str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (miss,) = report["failing_turns"]
    assert miss["line"] == 1 and miss["expected"] == "payslip" and miss["field"] == "intent"
