"""Built-in small talk: whole messages, and messages of several small-talk pieces."""

from __future__ import annotations

import pytest
from dingskill.skills.smalltalk import SmallTalk, match_small_talk


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("谢谢，再见", SmallTalk.GOODBYE),
        ("hi, what can you do", SmallTalk.HELP),
        # the longest runs are the pieces: "thank you so much", "see you"
        ("Thank you so much! See you", SmallTalk.GOODBYE),
        ("bye bye", SmallTalk.GOODBYE),
        ("hello there", SmallTalk.GREETING),
        ("/帮助", SmallTalk.HELP),
        ("good morning, thanks a lot", SmallTalk.THANKS),
    ],
)
def test_pieces_of_small_talk_are_the_last_ones_kind(text, kind):
    assert match_small_talk(text) is kind


@pytest.mark.parametrize(
    "text",
    [
        "hi, please reset my password",
        "thanks for nothing",
        "hello hello hello hello hello hello hello hello why is my laptop so slow",
        "你好 我想请假 谢谢",
        "",
        "hi there bot the printer",
    ],
)
def test_a_piece_that_is_no_small_talk_makes_none(text):
    assert match_small_talk(text) is None
