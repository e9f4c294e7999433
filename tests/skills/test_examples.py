"""The example skills train and hold their sample conversations, in Chinese and English."""

from __future__ import annotations

import datetime as dt

import pytest
from dingskill.runtime.local import LocalPipeline
from dingskill.skills import Engine

TODAY = dt.date(2026, 11, 24)  # a Tuesday


def _engine(*skills, clock=None):
    import time

    return Engine(list(skills), clock=clock or time.time, today=TODAY)


def _say(engine, text, ctx, **fields):
    """One turn through the runtime's Pipeline (in memory) over ``engine``."""
    return LocalPipeline(engine.skills, engine=engine).respond(text, ctx, **fields)


@pytest.mark.parametrize("fixture,floor", [("hr", 0.85), ("faq", 0.75), ("helpdesk_skill", 0.8)])
def test_each_example_trains_above_a_floor(fixture, floor, request):
    skill = request.getfixturevalue(fixture)
    assert skill.evaluate().summary["accuracy"] >= floor


def test_multi_turn_leave_request(hr):
    e, ctx = _engine(hr), {}
    r = _say(e, "我想请假", ctx, sender_nick="小王")
    assert (
        r.intent == "ask_leave"
        and "病假、事假" in r.text
        and ctx["flow"]["pending"] == "leave_type"
    )
    r = _say(e, "病假", ctx)
    assert r.source == "dialogue" and r.slots == {"leave_type": "病假"} and "哪天" in r.text
    r = _say(e, "下周三", ctx)
    assert r.slots["start_date"] == "2026-12-02" and "几天" in r.text
    r = _say(e, "一天半", ctx, sender_nick="小王")
    assert r.text.startswith("小王，您的病假申请：2026-12-02 起，共 1.5 天")
    assert "flow" not in ctx and r.state == {}


def test_slots_given_up_front_skip_questions(hr):
    e, ctx = _engine(hr), {}
    r = _say(e, "我要请年假，明天开始，请3天", ctx)
    assert "年假申请：2026-11-25 起，共 3 天" in r.text and "尚未提交" in r.text


@pytest.mark.parametrize("word", ["算了", "取消", "cancel", "never mind"])
def test_cancel_ends_the_flow(hr, word):
    e, ctx = _engine(hr), {}
    _say(e, "我想请假", ctx)
    r = _say(e, word, ctx)
    # the reply takes the language the user now speaks
    assert ("已取消" if word in "算了取消" else "cancelled") in r.text
    assert "flow" not in ctx and r.source == "dialogue"


def test_flow_times_out_with_an_injected_clock(hr):
    now = [1_800_000_000.0]
    e, ctx = _engine(hr, clock=lambda: now[0]), {}
    _say(e, "我想请假", ctx)
    now[0] += 301  # five minutes and a second later
    r = _say(e, "年假", ctx)
    assert "超时" in r.text  # the old form was cancelled; a new one may start from this message
    assert "flow" not in ctx or ctx["flow"]["started_ms"] == int(now[0] * 1000)


def test_another_request_mid_form_is_answered_and_the_form_resumes(hr):
    e, ctx = _engine(hr), {}
    _say(e, "我想请假", ctx)
    r = _say(e, "我想看这个月的工资条", ctx)
    assert r.intent == "payslip" and "工资条" in r.text and "回到刚才的事项" in r.text
    assert ctx["flow"]["pending"] == "leave_type" and ctx["flow"]["digressions"] == 1
    assert _say(e, "年假", ctx).slots == {"leave_type": "年假"}  # not a slot value before


def test_english_faq_and_card(faq):
    e, ctx = _engine(faq), {}
    assert _say(e, "hi there", ctx, sender_nick="Ann").text.endswith(
        ("How can I help?", "what can I do for you?")
    )
    card = _say(e, "help", ctx)
    assert (
        card.format == "card"
        and card.card["buttons"][0]["title"] == "Office hours"
        and card.source == "rule"
    )
    oos = _say(e, "what's the capital of Peru?", ctx)
    assert oos.intent == "oos" and oos.source == "fallback"


def test_engine_routes_across_skills_by_language(hr, faq):
    e, ctx = _engine(hr, faq), {}
    assert _say(e, "我想看工资条", ctx).skill_id == "com.dingskill.hr-assistant"
    assert _say(e, "what are the office hours?", ctx).skill_id == "com.dingskill.faq-en"
    zh = _say(e, "明天北京会下雨吗", ctx)
    assert zh.intent == "oos" and "抱歉" in zh.text
    en = _say(e, "recommend a good pizza place", ctx)
    assert en.intent == "oos" and en.text.startswith("Sorry")


def test_history_is_bounded_and_json(hr):
    import json

    e, ctx = _engine(hr), {}
    for i in range(10):
        _say(e, f"我想看工资条 {i}", ctx)
    assert len(ctx["history"]) == 6
    json.dumps(ctx)


def test_package_files_are_deterministic(hr):
    a, b = hr.package_files(), hr.package_files()
    assert a == b
    assert {
        "skill.yaml",
        "CHANGELOG.md",
        "model.dsm",
        "evaluation.json",
        "fingerprint.json",
    } <= set(a)
    import json

    fp = json.loads(a["fingerprint.json"])
    assert fp["utterances"] == 770 and fp["intents"] == 17 and len(fp["sha256"]) == 64


def test_scripted_digressions_zh_and_en(hr, faq):
    """The leave form survives a question for another skill in another language, a weather
    question holding a date, /help and small talk; nothing of those becomes a slot value."""
    e, ctx = _engine(hr, faq), {}
    assert _say(e, "你好", ctx).source == "smalltalk"
    _say(e, "我想请假", ctx)
    assert _say(e, "事假", ctx).slots == {"leave_type": "事假"}
    r = _say(e, "明天北京会下雨吗", ctx)  # holds a date, but is a question
    assert r.intent == "oos" and "回到刚才的事项" in r.text and r.slots == {"leave_type": "事假"}
    r = _say(e, "what's the wifi password?", ctx)  # another skill, another language
    assert r.intent == "wifi_password_faq" and "Back to your request" in r.text
    r = _say(e, "/help", ctx)
    assert (
        r.intent == "help"
        and "From which day" in r.text  # the form speaks the user's latest language
        and ctx["flow"]["pending"] == "start_date"
    )
    assert _say(e, "下周一", ctx).slots["start_date"] == "2026-11-30"
    r = _say(e, "三天", ctx)
    assert r.intent == "ask_leave" and "共 3 天" in r.text
    assert ctx["last_flow"]["ended"] == "completed" and "flow" not in ctx
    _say(e, "我想请假", ctx)
    _say(e, "算了", ctx)
    assert ctx["last_flow"]["ended"] == "cancelled"
    # English small talk and out of scope with suggestions
    ectx: dict = {}
    assert _say(e, "thank you", ectx).text
    assert _say(e, "bye", ectx).intent == "goodbye"


def test_small_talk_built_in_and_overridden(hr, faq):
    from dingskill.skills.smalltalk import SmallTalk, match_small_talk

    assert match_small_talk("你好呀！") is SmallTalk.GREETING
    assert match_small_talk("Thank you so much!") is SmallTalk.THANKS
    assert match_small_talk("你能做什么？") is SmallTalk.HELP
    assert match_small_talk("拜拜") is SmallTalk.GOODBYE
    assert match_small_talk("你好，我想请假") is None
    zh = _say(_engine(hr), "你好", {})
    assert zh.intent == "greeting" and "HR 助手" in zh.text
    helped = _say(_engine(hr), "/help", {})
    assert helped.intent == "help" and "请假" in helped.text and helped.source == "smalltalk"
    # faq-en has its own greet intent and help rule: they win over the built-in ones
    assert _say(_engine(faq), "hi there", {}).intent == "greet"
    assert _say(_engine(faq), "help", {}).source == "rule"


def test_out_of_scope_suggests_closest_intents(hr):
    from dingskill.nlu.classifier import Decision

    e = _engine(hr)
    d = Decision(
        "oos", 0.6, [("oos", 0.6), ("payslip", 0.3), ("leave_balance", 0.08)], "model", None
    )
    r = e._fallback_reply("那个东西怎么弄", d, {})
    assert r.intent == "oos" and r.format == "card" and r.text.startswith("抱歉")
    # the closest intents first (their labels), then what the skill offers first
    titles = [b["title"] for b in r.card["buttons"]]
    assert titles[0] == "查工资条" and "请假" in titles and len(titles) <= 4
