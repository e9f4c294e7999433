"""Loaders on good and broken files; every error names file, line and field."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from dingskill.datasets import Dataset, DatasetError, detect_language, fetch_clinc150, load


def _w(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_csv_keeps_line_numbers_and_language(tmp_path):
    p = _w(
        tmp_path / "d.csv",
        'text,intent\n我想请假,ask_leave\n"book a room, please",book_room\n\nhi 开会,book_room\n',
    )
    ds = load(p)
    assert ds.texts == ["我想请假", "book a room, please", "hi 开会"]
    assert ds.df["line"].tolist() == [2, 3, 5]
    assert ds.df["lang"].tolist() == ["zh", "en", "mixed"]


def test_tsv_and_custom_columns(tmp_path):
    p = _w(tmp_path / "d.tsv", "utt\tlabel\n报销打车费\texpense\n")
    ds = load(p, text_col="utt", intent_col="label")
    assert ds.intents == ["expense"]
    with pytest.raises(DatasetError, match=r"d.tsv:1: missing column 'text'.*field 'text'"):
        load(p)


def test_csv_row_with_wrong_field_count_is_reported_not_dropped(tmp_path):
    p = _w(tmp_path / "d.csv", "text,intent\na,b\nc,d,e\n")
    ds = load(p)
    assert len(ds) == 1
    report = ds.validate(min_examples=1)
    assert not report.ok
    assert any("d.csv:3: error skipped-row" in line for line in report.lines())


def test_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "gbk.csv"
    p.write_bytes(b"text,intent\n" + "请假\n".encode("gbk"))
    with pytest.raises(DatasetError, match=r"gbk.csv:2: not UTF-8"):
        load(p)


def test_jsonl_good_and_broken(tmp_path):
    good = _w(
        tmp_path / "d.jsonl",
        json.dumps({"text": "订会议室", "intent": "book_room"}, ensure_ascii=False) + "\n\n",
    )
    assert load(good).texts == ["订会议室"]
    bad = _w(tmp_path / "b.jsonl", '{"text": "x", "intent": "y"}\n{"text": "x"\n')
    with pytest.raises(DatasetError, match=r"b.jsonl:2: invalid JSON"):
        load(bad)
    missing = _w(tmp_path / "m.jsonl", '{"text": "x"}\n')
    with pytest.raises(DatasetError, match=r"m.jsonl:1: .*field 'intent'"):
        load(missing)


RASA = """version: "3.1"
nlu:
- intent: ask_leave
  examples: |
    - 我想请假
    - 明天请[一天](duration)假
- synonym: 年假
  examples: |
    - 带薪假
- intent: greet
  examples: |
    - hello
    oops no dash
"""


def test_rasa_yaml_lines_entities_and_skips(tmp_path):
    ds = load(_w(tmp_path / "nlu.yml", RASA))
    assert ds.texts == ["我想请假", "明天请一天假", "hello"]
    assert ds.df["line"].tolist() == [5, 6, 12]
    reasons = [r for _, _, r in ds.skipped]
    assert not any("synonym" in r for r in reasons) and any("'- '" in r for r in reasons)
    assert ds.synonyms == {"带薪假": "年假"}
    assert ds.entities[1] == [{"start": 3, "end": 5, "entity": "duration", "value": "一天"}]
    with pytest.raises(DatasetError, match=r"x.yml:1: expected an 'nlu:' list"):
        load(_w(tmp_path / "x.yml", "rules: []\n"))
    with pytest.raises(DatasetError, match="examples"):
        load(_w(tmp_path / "y.yml", "nlu:\n- intent: a\n"))


def test_clinc_layout_and_errors(tmp_path):
    p = _w(
        tmp_path / "c.json", json.dumps({"train": [["hi", "greet"]], "oos_train": [["meh", "oos"]]})
    )
    ds = load(p)
    assert ds.df["split"].tolist() == ["train", "train"]
    with pytest.raises(DatasetError, match="CLINC150 layout"):
        load(_w(tmp_path / "n.json", "[]"))


def test_dataframe_round_trip(tmp_path):
    df = pd.DataFrame({"q": ["查工资条", "payslip please"], "y": ["payslip", "payslip"]})
    ds = load(df, text_col="q", intent_col="y")
    assert isinstance(ds, Dataset) and ds.intents == ["payslip", "payslip"]
    assert load(ds.to_csv(tmp_path / "o.csv")).texts == ds.texts
    assert load(ds.to_jsonl(tmp_path / "o.jsonl")).texts == ds.texts
    with pytest.raises(DatasetError, match="missing column 'q'"):
        load(pd.DataFrame({"text": []}), text_col="q")


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load(tmp_path / "none.csv")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        load(_w(tmp_path / "x.xlsx", ""))


@pytest.mark.parametrize(
    "text,lang",
    [
        ("我想请三天年假", "zh"),
        ("book a meeting room", "en"),
        ("帮我 book 一个 meeting room", "mixed"),
        ("VPN连不上了", "zh"),
        ("12345", "en"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_summary_frames():
    ds = load(
        pd.DataFrame({"text": ["请假", "请个假吧", "hello"], "intent": ["leave", "leave", "greet"]})
    )
    s = ds.summary()
    assert s["intents"].loc["leave", "count"] == 2
    assert set(s["languages"].index) == {"zh", "en"}
    assert "leave" in ds._repr_html_()


def test_stratified_split_is_seeded_and_stratified():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "intent": ["a"] * 50 + ["b"] * 50})
    a = load(df).split(test_size=0.2, val_size=0.1, seed=3)
    b = load(df).split(test_size=0.2, val_size=0.1, seed=3)
    assert a.df["split"].tolist() == b.df["split"].tolist()
    test = a.subset("test")
    assert len(test) == 20 and test.df["intent"].value_counts().tolist() == [10, 10]
    assert len(a.subset("val")) == 10
    with pytest.raises(DatasetError, match="sum below 1"):
        load(df).split(test_size=0.6, val_size=0.5)


def test_clinc150_from_shared(clinc_home):
    splits = fetch_clinc150("full", data_home=clinc_home)
    assert len(splits["train"]) == 15000 and splits["train"].df["intent"].nunique() == 150
    assert len(splits["oos_test"]) == 1000 and set(splits["oos_test"].intents) == {"oos"}


def test_clinc150_missing_or_altered(tmp_path, clinc_home):
    with pytest.raises(DatasetError, match="download=True"):
        fetch_clinc150("small", data_home=tmp_path)
    with pytest.raises(DatasetError, match="download=True"):
        fetch_clinc150("small", tmp_path)  # the data home as the second positional argument
    (tmp_path / "data_small.json").write_bytes((clinc_home / "data_small.json").read_bytes() + b" ")
    with pytest.raises(DatasetError, match="SHA-256 mismatch"):
        fetch_clinc150("small", data_home=tmp_path)
