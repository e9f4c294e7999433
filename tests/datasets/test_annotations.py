"""Entity annotations in every format: markup removed, spans kept, bad spans reported."""

from __future__ import annotations

import json

from dingskill.cli.main import main
from dingskill.datasets import load
from dingskill.datasets.annotations import parse_inline, to_inline


def _w(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_inline_forms():
    text, ents, issues = parse_inline(
        '帮我订[西湖厅](room)，[周五](date:2026-12-11)下午[三点]{"entity": "time", "value": "15:00"}'
    )
    assert text == "帮我订西湖厅，周五下午三点"
    assert not issues
    assert [(text[e["start"] : e["end"]], e["entity"], e["value"]) for e in ents] == [
        ("西湖厅", "room", None),
        ("周五", "date", "2026-12-11"),
        ("三点", "time", "15:00"),
    ]
    back = to_inline(text, [{**e, "value": e["value"] or "西湖厅"} for e in ents])
    assert parse_inline(back)[0] == text


def test_parse_inline_bad_markup_is_reported():
    text, ents, issues = parse_inline('订[西湖厅]{"entity": room}')
    assert not ents and issues and "invalid JSON" in issues[0].message
    assert text == '订[西湖厅]{"entity": room}'
    _, _, issues = parse_inline("订[西湖厅](1room)")
    assert "bad entity type" in issues[0].message


def test_csv_inline_markup_is_stripped_for_intents(tmp_path):
    p = _w(
        tmp_path / "d.csv",
        "text,intent\n帮我订[西湖厅](room),book_room\n[west lake](room:西湖厅) please,book_room\nhi,greet\n",
    )
    ds = load(p)
    assert ds.texts == ["帮我订西湖厅", "west lake please", "hi"]
    assert ds.intents == ["book_room", "book_room", "greet"]
    assert ds.entities == [
        [{"start": 3, "end": 6, "entity": "room", "value": "西湖厅"}],
        [{"start": 0, "end": 9, "entity": "room", "value": "西湖厅"}],
        [],
    ]
    assert ds.has_entities and ds.entity_types == ["room"]
    assert ds.df["line"].tolist() == [2, 3, 4]
    # round trip through CSV and JSONL keeps text and spans
    for out in (tmp_path / "o.csv", tmp_path / "o.jsonl"):
        getattr(ds, "to_csv" if out.suffix == ".csv" else "to_jsonl")(out)
        again = load(out)
        assert again.texts == ds.texts and again.entities == ds.entities


def test_unannotated_data_has_no_entities_column(tmp_path):
    ds = load(_w(tmp_path / "d.csv", "text,intent\n请假,leave\n"))
    assert "entities" not in ds.df.columns and not ds.has_entities and ds.entities == [[]]


def test_rasa_synonyms_and_lookups(tmp_path):
    p = _w(
        tmp_path / "nlu.yml",
        "nlu:\n"
        "- intent: book_room\n"
        "  examples: |\n"
        "    - 订[西湖](room)\n"
        '    - 订[钱塘厅]{"entity": "room", "value": "钱塘厅"}下午\n'
        "- synonym: 西湖厅\n"
        "  examples: |\n"
        "    - 西湖\n"
        "- lookup: room\n"
        "  examples: |\n"
        "    - 西湖厅\n"
        "    - 钱塘厅\n",
    )
    ds = load(p)
    assert ds.texts == ["订西湖", "订钱塘厅下午"]
    assert [e[0]["value"] for e in ds.entities] == ["西湖厅", "钱塘厅"]
    assert ds.synonyms["西湖"] == "西湖厅"
    assert ds.lookups == {"room": ["西湖厅", "钱塘厅"]}
    assert ds.df["line"].tolist() == [4, 5]
    assert ds.validate(min_examples=1).ok
    # splits and subsets keep the synonyms and lookup tables
    part = ds.split(test_size=0.5, seed=0)
    assert part.synonyms == ds.synonyms and part.lookups == ds.lookups


def test_jsonl_spans_and_bad_spans(tmp_path):
    rows = [
        {"text": "订西湖厅", "intent": "book", "entities": [{"start": 1, "end": 4, "entity": "room"}]},
        # off by one: the value sits one character later
        {"text": "订西湖厅 ok", "intent": "book", "entities": [
            {"start": 0, "end": 3, "entity": "room", "value": "西湖厅"}]},
        {"text": "a b", "intent": "x", "entities": [
            {"start": 0, "end": 3, "entity": "t"}, {"start": 2, "end": 3, "entity": "u"}]},
        {"text": "abc", "intent": "x", "entities": [{"start": 1, "end": 9, "entity": "t"}]},
        {"text": "abc", "intent": "x", "entities": [{"start": "1", "end": 2, "entity": "t"}]},
    ]  # fmt: skip
    p = _w(tmp_path / "d.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    ds = load(p)
    assert ds.entities[0] == [{"start": 1, "end": 4, "entity": "room", "value": "西湖厅"}]
    report = ds.validate(min_examples=1, entity_types=["room", "t"])
    lines = report.lines()
    assert any("d.jsonl:2: error span-mismatch: entities[0]:" in x for x in lines), lines
    assert any("d.jsonl:3: error overlapping-entities: entities[1]" in x for x in lines)
    assert any("d.jsonl:3: error unknown-entity-type: entities[1].entity" in x for x in lines)
    assert any("d.jsonl:4: error span-out-of-range: entities[0]" in x for x in lines)
    assert any("d.jsonl:5: error bad-annotation: entities[0].start" in x for x in lines)
    assert not any(":1: error" in x for x in lines)


def test_cli_validate_reports_file_line_field(tmp_path, capsys):
    p = _w(
        tmp_path / "d.jsonl",
        json.dumps(
            {
                "text": "订西湖厅",
                "intent": "b",
                "entities": [{"start": 2, "end": 9, "entity": "room"}],
            },
            ensure_ascii=False,
        )
        + "\n",
    )
    assert main(["datasets", "validate", str(p)]) == 1
    assert f"{p}:1: error span-out-of-range: entities[0]:" in capsys.readouterr().out
