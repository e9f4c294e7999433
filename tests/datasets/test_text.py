"""dingskill.text: the one normaliser, date rewrite and language detector."""

from __future__ import annotations

import pytest
from dingskill.text import clean_message, dates_to_iso, detect_language, find_control, fold


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("＠HR小助手 订会议室", "订会议室"),  # full-width @mention
        ("@办公助手 ＠HR小助手 订会议室", "订会议室"),
        ("ＶＰＮ连不上了，怎么办？", "VPN连不上了，怎么办？"),  # Chinese punctuation kept
        ("请假３天\u200b", "请假3天"),
        ("2026年12月3日到2026/12/5", "2026年12月3日到2026/12/5"),  # words never rewritten
        ("１２月２１日开始请５天年假", "12月21日开始请5天年假"),
        ("第一行\n第二行", "第一行\n第二行"),
        ("\ufeff\x07", ""),
    ],
)
def test_clean_message(raw, clean):
    assert clean_message(raw) == clean


def test_dates_are_rewritten_once_and_idempotently():
    once = dates_to_iso("从2026.1.5到2026-1-9")
    assert once == "从2026-01-05到2026-01-09" and dates_to_iso(once) == once
    assert dates_to_iso("order 12026/1/5") == "order 12026/1/5"  # no partial year


def test_language_and_fold():
    assert [detect_language(t) for t in ["我想请假", "book a room", "VPN连不上了", ""]] == [
        "zh",
        "en",
        "zh",
        "en",
    ]
    assert detect_language("帮我 book 一个 meeting room") == "mixed"
    assert fold("  ＡＢＣ\u200bＤ  Ｅ ") == "abc d e"
    assert find_control("ok\tfine\n") is None and find_control("bad\x07") == "\x07"
