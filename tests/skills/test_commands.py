"""Slots from entities, the commands a message becomes within a form, and the manifest checks
of entity slots. Whole conversations are in tests/conversations (test_dialogue_corpus.py)."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
from dingskill.nlu.entity import Entity, EntitySource
from dingskill.skills import ManifestError, Skill, SkillError
from dingskill.skills.commands import Act, Digression, understand
from dingskill.skills.dialogue import Awaiting, FlowState
from dingskill.skills.manifest import parse_manifest
from dingskill.skills.slots import closest_word, slot_value

TODAY = dt.date(2026, 12, 9)  # a Wednesday
LEAVE = {
    "leave_type": {"type": "words", "words": {"年假": ["annual leave"], "病假": ["sick leave"]}},
    "start_date": {
        "type": "date",
        "label": {"zh": "开始日期", "en": "start date"},
        "aliases": ["日期", "date"],
    },
    "days": {"type": "duration", "aliases": ["天数"]},
}
FLOW = {"slots": [{"name": n, "ask": "?"} for n in LEAVE]}


@pytest.mark.parametrize(
    "spec,entity,value,want",
    [
        ({"type": "date"}, "date", "2026-12-14", "2026-12-14"),
        ({"type": "date"}, "datetime", "2026-12-11T15:00", "2026-12-11"),
        (
            {"type": "date"},
            "date_range",
            {"start": "2026-12-14", "end": "2026-12-16"},
            "2026-12-14",
        ),
        ({"type": "time"}, "datetime", "2026-12-11T15:00", "15:00"),
        ({"type": "time"}, "part_of_day", "afternoon", "afternoon"),
        ({"type": "duration"}, "duration", {"amount": 5.0, "unit": "day"}, 5),
        ({"type": "duration"}, "duration", {"amount": 1.5, "unit": "day"}, 1.5),
        ({"type": "duration"}, "duration", {"amount": 1.0, "unit": "week"}, 7),
        ({"type": "duration"}, "duration", {"amount": 2.0, "unit": "hour"}, None),
        ({"type": "duration", "unit": "hour"}, "duration", {"amount": 2.0, "unit": "hour"}, 2),
        ({"type": "amount"}, "amount", {"amount": 200.0, "currency": "CNY"}, 200),
        ({"type": "amount"}, "number", 1, None),  # 一个会议室 is no amount of money
        ({"type": "date"}, "duration", {"amount": 3.0, "unit": "day"}, None),
        (
            {"type": "entity", "entity": "room", "words": {"西湖厅": ["west lake"]}},
            "room",
            "west lake",
            "西湖厅",
        ),
        ({"type": "entity", "entity": "room"}, "person", "小王", None),
    ],
)
def test_a_slot_takes_the_entities_of_its_type_converted(spec, entity, value, want):
    assert slot_value("slot", spec, entity, value) == want


def test_typos_resolve_or_are_suggested():
    words = LEAVE["leave_type"]["words"]
    assert closest_word(words, "anual leave")[0] == "年假"  # close: set at once
    assert closest_word(words, "anual leave")[1] >= 0.8
    value, sim = closest_word(words, "年价")  # one character of two: ask
    assert value == "年假" and 0.5 <= sim < 0.8
    assert closest_word(words, "随便说说") is None


def _state(**kw) -> FlowState:
    base = dict(skill="s", intent="ask_leave", slots={}, pending="leave_type", started_ms=0)
    return FlowState(**{**base, **kw})


def _ents(text: str, *found: tuple[str, str, object]) -> list[Entity]:
    out = []
    for piece, entity, value in found:
        start = text.index(piece)
        out.append(Entity(start, start + len(piece), entity, value, 1.0, EntitySource.SYSTEM))
    return out


def _no_route():
    raise AssertionError("a bare answer must not need the routing decision")


def test_commands_of_answers_corrections_and_named_slots():
    filled = _state(slots={"leave_type": "年假", "start_date": "2026-12-10"}, pending="days")
    text = "不对，改成下周一"
    cmds = understand(
        text, filled, FLOW, LEAVE, _ents(text, ("下周一", "date", "2026-12-14")), _no_route
    )
    assert [(c.act, c.slot, c.value) for c in cmds] == [
        (Act.CORRECT_SLOT, "start_date", "2026-12-14")
    ]
    text = "是年假不是病假"
    ents = [
        Entity(1, 3, "leave_type", "年假", 1.0, EntitySource.RULE),
        Entity(5, 7, "leave_type", "病假", 1.0, EntitySource.RULE),
    ]
    sick = _state(slots={"leave_type": "病假"}, pending="start_date")
    assert [(c.act, c.value) for c in understand(text, sick, FLOW, LEAVE, ents, _no_route)] == [
        (Act.CORRECT_SLOT, "年假")
    ]
    # several slots in one answer, one given before it is asked
    text = "年假，下周一开始，三天"
    ents = [
        Entity(0, 2, "leave_type", "年假", 1.0, EntitySource.RULE),
        *_ents(
            text,
            ("下周一", "date", "2026-12-14"),
            ("三天", "duration", {"amount": 3.0, "unit": "day"}),
        ),
    ]
    cmds = understand(text, _state(), FLOW, LEAVE, ents, _no_route)
    assert {c.slot: c.value for c in cmds if c.act is Act.SET_SLOT} == {
        "leave_type": "年假",
        "start_date": "2026-12-14",
        "days": 3,
    }
    # a slot named without a value is asked again; "1 day" names no slot
    cmds = understand("改一下日期", filled, FLOW, LEAVE, [], _no_route)
    assert [(c.act, c.slot) for c in cmds] == [(Act.CHANGE_SLOT, "start_date")]
    text = "1 day"
    cmds = understand(
        text,
        filled,
        FLOW,
        LEAVE,
        _ents(text, ("1 day", "duration", {"amount": 1.0, "unit": "day"})),
        _no_route,
    )
    assert [(c.act, c.slot) for c in cmds] == [(Act.SET_SLOT, "days")]


def test_a_digression_never_fills_a_slot():
    from dingskill.nlu.classifier import Decision

    text = "明天北京会下雨吗"
    oos = Decision("oos", 0.99, [("oos", 0.99)], "model", None)
    cmds = understand(
        text,
        _state(pending="start_date"),
        FLOW,
        LEAVE,
        _ents(text, ("明天", "date", "2026-12-10")),
        lambda: (None, oos),
        long_answer=lambda t: len(t) > 6,
    )
    assert [(c.act, c.digression) for c in cmds] == [(Act.DIGRESSION, Digression.OUT_OF_SCOPE)]
    assert all(c.slot is None for c in cmds)


def test_confirm_and_suggestion_answers():
    confirming = _state(slots={"leave_type": "年假"}, pending="", awaiting=Awaiting.CONFIRM.value)
    assert understand("是的", confirming, FLOW, LEAVE, [], _no_route)[0].act is Act.CONFIRM
    assert understand("no", confirming, FLOW, LEAVE, [], _no_route)[0].act is Act.DENY
    assert understand("算了", confirming, FLOW, LEAVE, [], _no_route)[0].act is Act.CANCEL
    asked = _state(
        awaiting=Awaiting.SUGGESTION.value, suggestion={"slot": "leave_type", "value": "年假"}
    )
    cmd = understand("对", asked, FLOW, LEAVE, [], _no_route)[0]
    assert (cmd.act, cmd.slot, cmd.value) == (Act.CONFIRM, "leave_type", "年假")
    cmd = understand("年价", _state(), FLOW, LEAVE, [], _no_route, long_answer=lambda t: False)[0]
    assert (cmd.act, cmd.value) == (Act.SUGGEST, "年假")


MANIFEST = textwrap.dedent("""\
    id: com.example.rooms
    name: Rooms
    version: 0.1.0
    languages: [zh]
    dataset: {train: data.csv}
    slots:
      room: {type: entity, entity: room}
      when: {type: datetime}
    intents:
      book: {template: "{{ entities.room.text }} {{ slots.when }}"}
""")


def test_entity_slots_are_checked(tmp_path):
    with pytest.raises(
        ManifestError,
        match=r"skill.yaml:7: slots.room: a slot of type 'entity' "
        r"needs 'entity: NAME'",
    ):
        parse_manifest(MANIFEST.replace("type: entity, entity: room", "type: entity"), "skill.yaml")
    with pytest.raises(ManifestError, match=r"slots.when.entity: only a slot of 'type: entity'"):
        parse_manifest(
            MANIFEST.replace("type: datetime", "type: datetime, entity: x"), "skill.yaml"
        )
    with pytest.raises(ManifestError, match=r"slots.room.type: 'place' is not one of"):
        parse_manifest(MANIFEST.replace("type: entity, entity: room", "type: place"), "skill.yaml")
    # an entity the data never annotates is refused at training, naming the file and line
    (tmp_path / "skill.yaml").write_text(
        MANIFEST.replace("entity: room", "entity: rooom"), encoding="utf-8"
    )
    rows = ["text,intent"] + [f"订[西湖厅](room) {i},book" for i in range(8)]
    rows += [f"天气{i},oos" for i in range(8)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(SkillError) as exc:
        Skill.load(tmp_path).train()
    msg = str(exc.value)
    assert f"{tmp_path / 'skill.yaml'}:7: slots.room.entity: 'rooom'" in msg
    assert "annotates (room)" in msg and "[西湖厅](rooom)" in msg


def test_templates_see_the_entities_of_the_slots(hr):
    from dingskill.runtime.local import LocalPipeline
    from dingskill.skills import Engine

    chat = LocalPipeline([hr], engine=Engine([hr], today=TODAY))
    r = chat.send("reserve the West Lake room for Friday at 3pm")
    assert r.state["awaiting"] == "confirm" and r.slots["time"] == "15:00"
    assert {e["entity"] for e in r.entities} >= {"room", "datetime"}
    done = chat.send("yes")
    assert "West Lake room" in done.text and "2026-12-11 15:00" in done.text  # entities.room.text
