"""One arbitration across the example skills loaded together (hr-assistant and it-helpdesk in
Chinese, faq-en in English): no language gate, small talk needs real confidence, near-ties
ask a clarifying question whose pick (button, label, number or a typed request) resolves
it, a long message is decided on its asking sentence, and the out-of-scope reply says what
the bot can do and, after repeated misunderstanding, offers the operator's contact."""

from __future__ import annotations

import datetime as dt

import pytest
from dingskill.runtime.local import LocalPipeline
from dingskill.skills import Engine
from dingskill.skills.arbitration import (
    ArbitrationOptions,
    _candidates,
    arbitrate,
    asks,
    sentences,
)

TODAY = dt.date(2026, 12, 7)  # a Monday


@pytest.fixture(scope="module")
def three(hr, faq, helpdesk_skill):
    return [hr, faq, helpdesk_skill]


def _local(skills, **options):
    engine = Engine(skills, today=TODAY, options=ArbitrationOptions(**options))
    return LocalPipeline(skills, engine=engine)


@pytest.mark.parametrize(
    "text,skill,intent",
    [
        ("I want to take annual leave next Monday for 3 days", "hr-assistant", "ask_leave"),
        ("where is my payslip", "hr-assistant", "payslip"),
        ("I need a meeting room tomorrow", "hr-assistant", "book_meeting_room"),
        ("what are the office hours?", "faq-en", "company_hours"),
        ("我想看工资条", "hr-assistant", "payslip"),
    ],
)
def test_a_skill_hears_every_language_its_encoder_understands(three, text, skill, intent):
    out = arbitrate(three, text)
    assert out.served and out.skill.manifest.id.endswith(skill) and out.decision.intent == intent


def test_an_english_leave_request_is_served_in_full(three):
    r = _local(three).send("I want to take annual leave next Monday for 3 days", sender_nick="Ann")
    assert r.intent == "ask_leave" and r.slots == {
        "leave_type": "年假",
        "start_date": "2026-12-14",
        "days": 3,
    }


@pytest.mark.parametrize("text", ["3 days", "ok", "okay", "x"])
def test_low_confidence_small_talk_is_no_answer(three, text):
    r = _local(three).send(text)
    assert r.intent not in ("goodbye", "greet", "thanks"), (text, r.intent, r.text)
    assert "Bye" not in r.text and "See you" not in r.text


def test_acknowledgement_gets_a_short_word(three):
    assert _local(three).send("ok").text == "OK. Anything else I can help with?"
    assert _local(three).send("好的").text == "好的。还有什么可以帮您？"


def test_confident_small_talk_still_answers(three):
    assert _local(three).send("bye, see you tomorrow").intent == "goodbye"
    assert _local(three).send("thank you").intent == "thanks"


@pytest.mark.parametrize("pick", ["请假", "1", "第一个", "我想请假"])
def test_a_near_tie_asks_and_the_pick_resolves_it(three, pick):
    local = _local(three)
    r = local.send("年假", conversation_id="c")
    assert r.intent == "clarify" and r.text == "您是想：查年假余额 / 请假？"
    assert [b["title"] for b in r.card["buttons"]] == ["查年假余额", "请假"]
    # the first option is the leave balance; "请假" and "我想请假" pick the leave request
    r = local.send(pick, conversation_id="c")
    want = "leave_balance" if pick in ("1", "第一个") else "ask_leave"
    assert r.intent == want and "clarify" not in local.context({"conversation_id": "c"})
    if want == "ask_leave":  # the original message fills the slot: 年假
        assert r.slots == {"leave_type": "年假"} and "哪天" in r.text


def test_a_clarifying_question_in_english(three):
    local = _local(three, reply_language="en")
    r = local.send("年假", conversation_id="e")
    assert r.text == "Did you mean: Leave balance / Take leave?"
    r = local.send("Leave balance", conversation_id="e")
    assert r.intent == "leave_balance"


def test_an_unrelated_answer_drops_the_question(three):
    local = _local(three)
    assert local.send("年假", conversation_id="d").intent == "clarify"
    assert local.send("我想看工资条", conversation_id="d").intent == "payslip"


def test_a_long_message_is_decided_on_its_asking_sentence(three):
    story = "上周我去杭州出差，住的酒店离公司不远，每天早上坐地铁过去。" * 36
    text = story + "另外问一下，我还有几天年假？"
    assert len(text) >= 1000
    assert _local(three).send(text).intent == "leave_balance"
    assert _local(three).send("我还有几天年假？").intent == "leave_balance"
    story_en = "Last week I was travelling for a client project and the hotel was fine. " * 14
    r = _local(three).send(story_en + "Where can I see my leave balance?")
    assert len(story_en) > 1000 and r.intent == "leave_balance"


def test_sentences_and_asking():
    assert sentences("你好。我想请假！明天可以吗？") == ["你好。", "我想请假！", "明天可以吗？"]
    assert sentences("Hi there. Where is my payslip?") == ["Hi there.", "Where is my payslip?"]
    assert asks("明天可以吗？") and asks("where is my payslip") and not asks("住的酒店不错。")


def test_resignation_is_not_a_leave_policy_answer(three):
    r = _local(three).send("我要辞职")
    assert r.intent == "resignation" and "年假" not in r.text


@pytest.mark.parametrize(
    "text,lang", [("今天天气怎么样", "zh"), ("what's the weather like on Mars", "en")]
)
def test_out_of_scope_says_what_the_bot_can_do(three, text, lang):
    r = _local(three).send(text)
    assert r.intent == "oos" and r.format == "card" and r.card["buttons"]
    if lang == "zh":
        assert "我可以帮您：" in r.text and "请假" in r.text
    else:
        assert "I can help with:" in r.text and "Take leave" in r.text


def test_what_the_bot_can_do_follows_the_loaded_skills(three):
    """The headline labels are worked out once per set of skills (every out-of-scope reply
    names them): the same skills give the same sentence, another set (a reload) its own."""
    from dingskill.skills.fallback import can_do

    full = can_do(list(three), "zh")
    assert full == can_do(list(three), "zh") and "请假" in full
    hr = [s for s in three if "请假" in can_do([s], "zh")]
    others = [s for s in three if s not in hr]
    assert hr and others and "请假" not in can_do(others, "zh")
    assert "请假" in can_do(hr + others, "zh")  # a new set: worked out again


def test_repeated_misunderstanding_offers_the_operator_contact(three):
    local = _local(three, handover_contact="HR 服务台（分机 8000）", handover_group="cid-hr")
    texts = ["今天天气怎么样", "你喜欢什么颜色", "火星上有水吗"]
    replies = [local.send(t, conversation_id="h", sender_nick="小王") for t in texts]
    assert all(r.intent == "oos" for r in replies)
    assert "HR 服务台（分机 8000）" not in replies[1].text
    assert "联系人工：HR 服务台（分机 8000）" in replies[2].text
    assert replies[2].followups and replies[2].followups[0]["group"] == "cid-hr"
    assert "小王" in replies[2].followups[0]["text"]
    r = local.send("转人工", conversation_id="h2")
    assert r.intent == "handover" and "HR 服务台" in r.text


def test_no_contact_configured_says_so(three):
    r = _local(three).send("human")
    assert r.intent == "handover" and "no human contact is configured" in r.text


def test_the_operator_sets_the_reply_language(three):
    r = _local(three, reply_language="en").send("今天天气怎么样")
    assert r.text.startswith("Sorry")


@pytest.mark.parametrize("text", ["", "😀😀😀", "x" * 100_000, "我想看 payslip 呀", "🙂 请假"])
def test_bad_input_gets_a_sensible_reply(three, text):
    local = _local(three)
    r = local.send(text, conversation_id="b")
    assert r.text.strip() and r.intent in ("oos", "payslip", "ask_leave", "clarify"), r
    # the conversation goes on
    assert local.send("我想看工资条", conversation_id="b").intent == "payslip"


def test_the_gate_screen_skips_only_models_that_would_say_oos(three):
    """Arbitration runs a skill's full model only when its novelty gate lets the message
    through: every message the gate turns away is one the model calls out of scope."""
    texts = [
        "我想看工资条",
        "what are the office hours?",
        "电脑连不上网",
        "明天北京会下雨吗",
        "tell me a joke",
        "reset my password",
        "几点下班",
        "年假",
    ]
    skipped = 0
    for skill in three:
        for text in texts:
            if skill.beyond_gate(text) and skill.match_rule(text) is None:
                skipped += 1
                assert skill.decide(text).intent == "oos", (skill.manifest.id, text)
    assert skipped  # the screen does skip models


def test_arbitration_reads_each_skill_as_its_own_decide_does(three):
    """The arbitration's fast reading of each skill (one normalisation, the novelty gate only
    where it can change the answer) is the skill's own ``decide``, on every row of every
    example skill's held-out test set."""
    import csv

    from dingskill.nlu.normalize import normalize_text

    texts = []
    for skill in three:
        with (skill.path / skill.manifest.dataset["test"]).open(encoding="utf-8") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
    for skill in three:
        skill.model.clear_cache()  # the readings earlier arbitrations kept: both compute here
        for text in texts:
            norm = normalize_text(text)
            if skill.model.match_rule(norm, normalized=True) is not None:
                assert skill.match_rule(text) == skill.decide(text)
                continue
            assert skill.model.decide_normalized(norm) == skill.decide(text), (
                skill.manifest.id,
                text,
            )


def test_a_deferred_intent_goes_to_the_skill_that_owns_it(three, hr):
    """hr-assistant's IT intents declare ``defer_to`` the help desk: loaded together, the help
    desk serves 电脑蓝屏 (with its own reading of the request); alone, hr-assistant still
    points the user to the IT desk."""
    out = arbitrate(three, "电脑又蓝屏啦")
    assert (out.skill.manifest.id, out.decision.intent) == (
        "com.dingskill.it-helpdesk",
        "report_issue",
    )
    out = arbitrate(three, "输错几次密码账号就锁了")
    assert out.skill.manifest.id == "com.dingskill.it-helpdesk"
    assert out.decision.intent == "account_unlock"  # the owner's own intent, not a mapping
    alone = arbitrate([hr], "电脑又蓝屏啦")
    assert (alone.skill.manifest.id, alone.decision.intent) == (
        "com.dingskill.hr-assistant",
        "it_repair",
    )


def test_the_stacked_models_read_each_skill_as_its_own_decide_does(three):
    """One stacked reading of the three skills (``nlu/stack.py``: one pass over the n-grams,
    one product per block for all models) gives each skill's own Decision on every row of
    every example skill's test set: the same intents, confidences equal to float32 rounding."""
    import csv

    from dingskill.nlu.normalize import normalize_text
    from dingskill.nlu.stack import ModelStack

    stack = ModelStack([s.model for s in three])
    texts = ["", "🙂"]
    for skill in three:
        with (skill.path / skill.manifest.dataset["test"]).open(encoding="utf-8") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
    for text in texts:
        for skill, got in zip(three, stack.decisions(normalize_text(text)), strict=True):
            want = skill.decide(text)
            if want.source == "rule":
                continue  # arbitration checks rules first; the stack reads models only
            assert got.intent == want.intent, (skill.manifest.id, text)
            assert [a for a, _ in got.alternatives] == [a for a, _ in want.alternatives]
            assert got.confidence == pytest.approx(want.confidence, abs=1e-6)  # float32 blocks


def test_a_skill_decides_after_arbitration_as_it_decides_fresh(three):
    """Arbitration keeps each skill's stacked reading (in scope or not) as the model's own
    view of the text (no second reading); the skill's ``decide`` then returns that very
    Decision, and a fresh copy of the model with empty caches decides the same: same intent
    and alternatives, confidences equal to float32 rounding. On every example test row."""
    import csv

    from dingskill.nlu.classifier import IntentClassifier
    from dingskill.nlu.normalize import normalize_text
    from dingskill.skills import arbitration

    texts = []
    for skill in three:
        with (skill.path / skill.manifest.dataset["test"]).open(encoding="utf-8") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
    fresh = {s.manifest.id: IntentClassifier.from_bytes(s.model.to_bytes()) for s in three}
    seeded = turned_away = 0
    for text in texts:
        for skill in three:
            skill.model.clear_cache()
        arbitration.clear_caches()
        norm = normalize_text(text)
        if any(s.model.match_rule(norm, normalized=True) for s in three):
            continue
        whole = len(arbitration.sentences(text)) <= 1  # else decided on its sentences
        read = dict(
            zip(
                [s.manifest.id for s in three],
                arbitration._stack(three).decisions(norm),
                strict=True,
            )
        )
        arbitrate(three, text)
        for skill in three:
            sid = skill.manifest.id
            cached, new = skill.decide(text), fresh[sid].decide(text)
            fresh[sid].clear_cache()
            if whole:
                seeded += 1
                turned_away += read[sid].intent == "oos"
                assert cached == read[sid], (sid, text)  # the stacked reading, kept
            assert cached.intent == new.intent, (sid, text)
            assert [a for a, _ in cached.alternatives] == [a for a, _ in new.alternatives]
            assert [p for _, p in cached.alternatives] == pytest.approx(
                [p for _, p in new.alternatives], abs=1e-6
            )
    assert seeded > len(texts) and turned_away > len(texts) // 2


@pytest.mark.parametrize(
    "text,skill,intent",
    [
        ("我需要一个正版的CorelDRAW", "it-helpdesk", "software_install"),
        ("需要一个新的鼠标垫", "hr-assistant", "office_supplies"),
    ],
)
def test_two_sure_skills_the_nearest_domain_takes_it(three, text, skill, intent):
    """hr-assistant (never trained on a software request) and it-helpdesk are both sure of
    these ("需要一个…" reads as office supplies to hr-assistant): the skill whose own
    examples lie nearest the message takes it, not the one with the larger confidence."""
    from dingskill.nlu.normalize import normalize_text

    rule, found, _ = _candidates(three, text, ArbitrationOptions())
    sure = [c for c in found if c.confidence >= ArbitrationOptions().clarify_below]
    assert rule is None and len({c.skill.manifest.id for c in sure}) == 2  # a real conflict
    out = arbitrate(three, text)
    assert out.served and out.skill.manifest.id.endswith(skill) and out.decision.intent == intent
    norm = normalize_text(text)
    assert out.skill.model.closeness_normalized(norm) == max(
        c.skill.model.closeness_normalized(norm) for c in sure
    )
