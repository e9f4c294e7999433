"""RuleSet on its own, and normalize_text / feature analysis."""

from __future__ import annotations

import pytest
from dingskill.nlu import RuleSet, normalize_text
from dingskill.nlu.features import analyze
from dingskill.nlu.rules import RuleError


def test_ruleset_matches_words_then_patterns_in_order():
    rs = RuleSet(
        [
            {"intent": "ask_leave", "words": ["请假", "Day Off"], "patterns": ["^我要请.*假"]},
            {"intent": "expense", "patterns": [r"报销\d+元"]},
        ]
    )
    assert len(rs) == 2 and rs.intents == ["ask_leave", "expense"]
    m = rs.match("明天想请假")
    assert (m.intent, m.rule, m.index) == ("ask_leave", "word:请假", 0)
    assert rs.match("I need a DAY OFF").rule == "word:Day Off"
    assert rs.match("我要请三天婚假").rule == "word:请假" or rs.match(
        "我要请三天婚假"
    ).rule.startswith("regex")
    assert rs.match("帮我报销１２０元").rule == r"regex:报销\d+元"  # full-width digits normalised
    assert rs.match("订会议室") is None


def test_ruleset_patterns_searched_together_keep_their_order_and_flags():
    rs = RuleSet(
        [
            {"intent": "greet", "patterns": ["(?i)^hello"]},
            {"intent": "shout", "words": ["hey"], "patterns": ["WORLD$", r"^\d{3}$"]},
            {"intent": "late", "patterns": ["world"]},
        ]
    )
    assert rs._any is not None  # one search tells whether any pattern matches
    assert rs.match("HELLO WORLD", normalized=True).intent == "greet"  # the first rule
    assert rs.match("say WORLD", normalized=True).rule == "regex:WORLD$"
    assert rs.match("say world", normalized=True).intent == "late"  # (?i) is greet's alone
    assert rs.match("hey world", normalized=True).rule == "word:hey"  # words first
    assert rs.match("123", normalized=True).rule == r"regex:^\d{3}$"
    assert rs.match("nothing here", normalized=True) is None


def test_ruleset_patterns_that_do_not_combine_are_tried_one_by_one():
    rs = RuleSet([{"intent": "a", "patterns": [r"\Qa+b"]}, {"intent": "b", "patterns": ["c"]}])
    assert rs._any is None  # an open \Q quotes the rest: the union does not compile
    assert rs.match("xa+b").intent == "a" and rs.match("c").intent == "b"
    assert rs.match("ab") is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("请假", "list of dicts"),
        ([{"intent": "a", "words": ["x"]}, "nope"], "rule 1: expected a dict"),
        ([{"words": ["x"]}], "rule 0: 'intent'"),
        ([{"intent": "a"}], "rule 0 \\(a\\): needs at least one"),
        ([{"intent": "a", "words": "请假"}], "'words' must be a list"),
        ([{"intent": "a", "words": ["ok", ""]}], r"words\[1\]"),
        ([{"intent": "a", "patterns": ["[z-a]"]}], r"rule 0 \(a\): bad regex '\[z-a\]'"),
        ([{"intent": "a", "word": ["x"]}], "unknown key"),
    ],
)
def test_rule_validation_messages(rules, message):
    with pytest.raises(RuleError, match=message):
        RuleSet(rules)


def test_normalize_text():
    assert normalize_text("ＡＢＣ１２３，你好！") == "abc123,你好!"
    assert normalize_text("a\u200bb\x00c\tD  ") == "a b c d"
    assert normalize_text("") == ""
    with pytest.raises(TypeError):
        normalize_text(None)


def test_analyze_cjk_latin_and_mixed():
    zh = analyze("请假")
    assert {"z:请", "z:假", "z:请假", "z:<请", "z:假>"} <= set(zh)
    assert not any(f.startswith(("w:", "c:")) for f in zh)
    en = analyze("Day off")
    assert {"w:day", "w:off", "b:day off", "c: d", "c:day "} <= set(en)
    mixed = analyze("帮我book会议室")
    assert {"z:帮我", "w:book", "z:会议室"} <= set(mixed)
