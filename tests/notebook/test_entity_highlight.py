"""The chat widget marks each turn's entities in the user's text."""

from __future__ import annotations

import html
import re
from pathlib import Path

from dingskill.notebook import ChatWidget
from dingskill.notebook.chat import _align_entities
from dingskill.notebook.render import highlight_entities
from dingskill.skills import Skill

ROOT = Path(__file__).resolve().parents[2]


def test_highlight_escapes_and_marks_spans():
    text = "订<西湖厅> 周五"
    ents = [
        {
            "start": 2,
            "end": 5,
            "entity": "room",
            "value": "西湖厅",
            "confidence": 0.9,
            "source": "model",
        },
        {"start": 3, "end": 4, "entity": "bad", "value": "x"},  # overlaps: skipped
        {"start": 7, "end": 9, "entity": "date", "value": "2026-12-11"},
        {"start": 8, "end": 30, "entity": "outside", "value": None},  # outside the text: skipped
    ]
    out = highlight_entities(text, ents)
    assert out.startswith("订&lt;<mark class='ds-ent' data-entity='room'")
    assert "西湖厅</mark>&gt; " in out and "data-entity='date'" in out
    # the type label comes from CSS, so the bubble's text is the typed text
    assert re.sub(r"<[^>]+>", "", out) == html.escape(text)
    assert "bad" not in out and "outside" not in out


def test_offsets_move_past_a_mention():
    ents = [{"start": 3, "end": 6, "entity": "room", "value": "西湖厅"}]
    assert _align_entities("@办公助手 帮我订西湖厅", ents)[0]["start"] == 9


def test_widget_highlights_the_entities_of_a_turn():
    chat = ChatWidget([Skill.load(ROOT / "skills" / "hr-assistant")], sender_id="u1")
    bot = chat.send("帮我订西湖厅，周五下午三点")
    user = chat.transcript[-2]
    assert bot["entities"], bot
    for e in user["entities"]:
        assert user["text"][e["start"] : e["end"]]
    assert "class='ds-ent'" in chat.rendered_html()
