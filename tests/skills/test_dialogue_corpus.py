"""The dialogue corpus (tests/conversations/dialogue_zh.jsonl, dialogue_en.jsonl): whole
conversations — repair, several slots at once, digressions that never fill a slot, typos,
the confirm step, gave up vs cancelled, bad input — replayed through the one Pipeline with
the three example skills loaded together and a fixed today (2026-12-09, a Wednesday)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dingskill.notebook.regression import load_cases, replay_cases

CORPUS = Path(__file__).resolve().parents[1] / "conversations"
TODAY = dt.date(2026, 12, 9)
MINIMUM = {"zh": 50, "en": 40}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_dialogue_conversation_ends_right(lang, hr, faq, helpdesk_skill):
    path = CORPUS / f"dialogue_{lang}.jsonl"
    cases = {row["case"] for _, row in load_cases(path)}
    assert len(cases) >= MINIMUM[lang]
    problems = replay_cases([hr, faq, helpdesk_skill], path, today=TODAY)
    failed = {p.case for p in problems}
    success = 1 - len(failed) / len(cases)
    assert not problems, f"task success {success:.1%} ({lang}):\n" + "\n".join(map(str, problems))


def test_test_conversations_command_takes_today(capsys):
    from dingskill.cli.main import main

    root = Path(__file__).resolve().parents[2]
    assert (
        main(
            [
                "test-conversations",
                str(root / "skills" / "hr-assistant"),
                str(CORPUS / "dialogue_zh.jsonl"),
                "--today",
                "12/09",
            ]
        )
        == 2
    )
    assert "not a date" in capsys.readouterr().err
