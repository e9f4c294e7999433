"""The chat widget and views, driven from Python (set values, click buttons, read the HTML)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.datasets import load
from dingskill.evaluation import evaluate
from dingskill.notebook import (
    ChatWidget,
    assert_conversations,
    confusion_view,
    dataset_view,
    threshold_view,
)
from dingskill.notebook.render import markdown_to_html
from dingskill.skills import Skill

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chat():
    return ChatWidget(
        [Skill.load(ROOT / "skills" / "hr-assistant"), Skill.load(ROOT / "skills" / "faq-en")],
        sender_id="staff-1",
        sender_nick="小王",
    )


def test_enter_sends_and_transcript_shows_intent(chat):
    chat.input.value = "我想看这个月的工资条"  # what pressing Enter does in the browser
    assert chat.input.value == ""
    bot = chat.transcript[-1]
    assert bot["intent"] == "payslip" and bot["source"] == "rule" and len(chat.transcript) == 2
    html = chat.rendered_html()
    # the user's text, its entities marked (这个月: a date range)
    shown = re.sub(r"<[^>]+>", "", html)
    assert "我想看这个月的工资条" in shown and "ds-intent" in html and "payslip" in html
    assert "<mark class='ds-ent' data-entity='date_range'" in html
    assert "<h5" in html  # markdown reply rendered
    english = chat.send("what are the office hours?")
    assert english["intent"] == "company_hours" and english["alternatives"][0][0] == "company_hours"


def test_detail_line_shows_the_form_and_the_commands(chat):
    """A correction mid-form: the detail line names the commands the message became and
    what the form now waits for (the slot asked, or 是/否 to the summary)."""
    for text in ["我想请假", "年假", "明天"]:
        chat.send(text)
    fixed = chat.send("不对，改成下周一")
    assert fixed["commands"][0]["act"] == "correct_slot" and fixed["state"]["pending"] == "days"
    html = chat.rendered_html()
    assert "correct_slot(start_date=" in html and "waiting for: days [ask_leave: " in html
    chat.reset()
    chat.send("帮我订西湖厅，明天")
    assert "是/否 to the summary (confirm)" in chat.rendered_html()


def test_multi_turn_and_reset(chat):
    chat.send("我想请假")
    chat.send("病假")
    chat.send("明天")
    done = chat.send("一天")
    assert done["text"].startswith("小王，您的病假申请") and done["slots"]["days"] == 1
    mid = chat.transcript[3]
    assert mid["state"]["pending"] == "start_date"
    chat.reset_button.click()
    assert chat.transcript == [] and "no messages yet" in chat.rendered_html()
    chat.send("我想请假")
    chat.reset()
    assert chat.send("年假")["source"] != "dialogue"  # the pending question was forgotten


def test_group_chat_with_mention(chat):
    chat.chat_type.value = "group"
    bot = chat.send("工资条")
    assert chat.transcript[-2]["text"].startswith("@办公助手") and bot["intent"] == "payslip"
    assert "群聊" in chat.rendered_html()


def test_mark_retrain_changes_the_decision(chat):
    bot = chat.send("食堂几点开饭")
    before = bot["intent"]
    chat.turn_pick.value = bot["index"]
    chat.intent_pick.value = "hr_policy_question"
    chat.mark_button.click()
    assert chat.corrections.iloc[-1]["intent"] == "hr_policy_question"
    assert (
        chat.corrections.iloc[-1]["predicted"] == before
        and chat.corrections.iloc[-1]["source"] == "chat-widget"
    )
    for text in ["食堂几点开饭", "食堂什么时候开门", "食堂营业时间"]:
        chat.transcript.append(
            {
                "role": "user",
                "text": text,
                "sender": "x",
                "sender_id": "x",
                "conversation_type": "single",
                "index": len(chat.transcript),
            }
        )
        chat.transcript.append(
            {
                "role": "bot",
                "index": len(chat.transcript),
                "text": "",
                "intent": before,
                "confidence": 0.5,
                "alternatives": [],
                "source": "model",
                "rule": None,
                "slots": {},
                "state": {},
                "latency_ms": 0.0,
                "error": None,
                "user_text": text,
            }
        )
        chat.mark(chat.transcript[-1]["index"], "hr_policy_question")
    results = chat.retrain()
    assert results and results[0]["now"] == "hr_policy_question"
    assert "retrained" in chat.status.value
    assert chat.send("食堂几点开饭")["intent"] == "hr_policy_question"


def test_save_case_replays_and_tampered_case_fails(chat, tmp_path, capsys):
    for t in ["我想请假", "年假", "2026-12-01", "两天", "hello"]:
        chat.send(t)
    cases = chat.save_case(tmp_path / "cases.jsonl", name="leave-flow")
    rows = [json.loads(x) for x in cases.read_text(encoding="utf-8").splitlines()]
    assert [r["expected_intent"] for r in rows] == ["ask_leave"] * 4 + ["greet"]
    skills = chat.skills
    assert_conversations(skills, cases)
    dirs = [str(ROOT / "skills" / "hr-assistant"), str(ROOT / "skills" / "faq-en")]
    assert main(["test-conversations", *dirs, str(cases)]) == 0
    rows[4]["expected_intent"] = "goodbye"
    rows[3]["expected_reply"] = "别的回复"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    with pytest.raises(AssertionError, match="2 conversation mismatch"):
        assert_conversations(skills, bad)
    capsys.readouterr()
    assert main(["test-conversations", *dirs, str(bad)]) == 1
    assert (
        "line 5 (leave-flow): 'hello': intent expected 'goodbye', got 'greet'"
        in capsys.readouterr().out
    )


def test_markdown_renderer_escapes_html():
    out = markdown_to_html(
        "**粗体** <script>alert(1)</script> [x](javascript:alert(1)) [ok](https://a.example)"
    )
    assert "<b>粗体</b>" in out and "<script>" not in out and "href='javascript" not in out
    assert "href='https://a.example'" in out


def test_views():
    train = load(ROOT / "datasets/office-zh/utterances.csv")
    test = load(ROOT / "datasets/office-zh/test.csv")
    skill = Skill.load(ROOT / "skills" / "hr-assistant")
    report = evaluate(skill.model, test)
    assert "validation" in str(dataset_view(train).children[1].get_title(3))
    cv = confusion_view(report)
    assert report.confused_pairs.iloc[0]["true"] in cv.children[1].value
    tv = threshold_view(skill.model, test.texts, test.intents)
    low, high = tv.at(0.0), tv.at(0.99)
    assert (
        high["oos_recall"] >= low["oos_recall"]
        and high["in_scope_accuracy"] <= low["in_scope_accuracy"]
    )
    tv.slider.value = 0.99
    assert f"{high['oos_recall']:.3f}" in tv.readout.value
