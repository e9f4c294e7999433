"""EntityExtractor: spans into the typed text, canonical values, confidences, parameters,
persistence without pickle and the refusal of a model file from another version."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from dingskill.nlu import EntityExtractor, EntityModelError
from dingskill.nlu.entity import Entity, EntitySource
from dingskill.nlu.entity_features import tokenize
from sklearn.base import clone

ROOMS_ZH = ["西湖厅", "钱塘厅", "断桥厅", "孤山厅", "灵隐厅", "苏堤厅"]
ROOMS_EN = ["lake room", "river room", "hill room", "garden room", "tower room", "bay room"]
DAYS_ZH = ["明天", "周五", "下周一", "后天"]
DAYS_EN = ["tomorrow", "friday", "next monday", "sunday"]


def _row(parts):
    """Text and entities from pieces: plain strings and (text, type) pairs."""
    text, ents = "", []
    for p in parts:
        if isinstance(p, tuple):
            ents.append({"start": len(text), "end": len(text) + len(p[0]), "entity": p[1]})
            text += p[0]
        else:
            text += p
    return text, ents


def _data():
    rows, intents = [], []
    for i, room in enumerate(ROOMS_ZH):
        day = DAYS_ZH[i % len(DAYS_ZH)]
        rows.append(_row(["帮我订", (room, "room")]))
        rows.append(_row([(day, "date"), "想用", (room, "room"), "开会"]))
        rows.append(_row(["预订", (day, "date"), "的", (room, "room")]))
        intents += ["book_room"] * 3
    for i, room in enumerate(ROOMS_EN):
        day = DAYS_EN[i % len(DAYS_EN)]
        rows.append(_row(["book the ", (room, "room"), " please"]))
        rows.append(_row(["I need the ", (room, "room"), " ", (day, "date")]))
        rows.append(_row(["reserve ", (room, "room"), " for ", (day, "date")]))
        intents += ["book_room"] * 3
    rows.append(_row(["你好"]))
    intents.append("greet")
    texts = [t for t, _ in rows]
    return texts, [e for _, e in rows], intents


@pytest.fixture(scope="module")
def fitted():
    texts, ents, intents = _data()
    return EntityExtractor(
        max_iterations=60, synonyms={"西湖": "西湖厅"}, lookups={"room": ["西湖", "会议室A"]}
    ).fit(texts, ents, intents)


def test_finds_spans_in_the_text_as_typed(fitted):
    texts = ["帮我订灵隐厅", "Book the RIVER ROOM please", "ｒｅｓｅｒｖｅ hill room for friday"]
    found = fitted.predict(texts, ["book_room"] * 3)
    assert [(texts[0][e.start : e.end], e.entity) for e in found[0]] == [("灵隐厅", "room")]
    assert [(texts[1][e.start : e.end], e.entity) for e in found[1]] == [("RIVER ROOM", "room")]
    # full-width letters: the features fold them, the offsets stay in the typed text
    assert ("hill room", "room") in [(texts[2][e.start : e.end], e.entity) for e in found[2]]
    for row in found:
        for e in row:
            assert isinstance(e, Entity) and e.source is EntitySource.MODEL
            assert 0 < e.confidence <= 1
    assert fitted.predict(["", "   "]) == [[], []]


def test_tagging_only_the_known_attributes_changes_nothing(fitted):
    """predict leaves out the features the CRF model has no attribute for: the same labels,
    spans and confidences (to the float) as tagging with every feature."""
    texts = [
        "帮我订灵隐厅",
        "明天想用西湖厅开会，顺便订 lake room",
        "Book the RIVER ROOM please",
        "ｒｅｓｅｒｖｅ hill room for friday",
        "zzz unknown words only ¨ …",
        "你好",
    ]
    intents = ["book_room", "book_room", "book_room", None, "greet", "greet"]
    known = fitted._attributes()
    assert known and all(isinstance(a, str) for a in known)  # the model's dump was read
    fast = fitted.predict(texts, intents)
    plain = clone(fitted)
    plain._set_model(fitted.model_bytes_)
    plain.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    plain._known = None  # no dump: every feature goes to the tagger
    assert plain.predict(texts, intents) == fast
    assert plain._attributes() is None


def test_synonyms_give_the_canonical_value(fitted):
    (e,) = [e for e in fitted.predict(["帮我订西湖"], ["book_room"])[0] if e.entity == "room"]
    assert (e.start, e.end, e.value) == (3, 5, "西湖厅")


def test_parameters_are_declarative_and_checked():
    est = EntityExtractor(c1=0.1, features="plain")
    assert est.get_params()["c1"] == 0.1
    assert clone(est).get_params() == est.get_params()
    texts, ents, _ = _data()
    with pytest.raises(ValueError, match="features"):
        EntityExtractor(features="fancy").fit(texts, ents)
    with pytest.raises(ValueError, match="c1"):
        EntityExtractor(c1=-1).fit(texts, ents)


def test_bad_spans_and_lengths_are_refused():
    with pytest.raises(ValueError, match=r"row 0 entities\[0\].*outside the text"):
        EntityExtractor().fit(["订房"], [[{"start": 1, "end": 5, "entity": "room"}]])
    with pytest.raises(ValueError, match="one per text"):
        EntityExtractor().fit(["a", "b"], [[]])


def test_save_load_round_trip_and_other_version_refused(fitted, tmp_path):
    texts = ["预订明天的孤山厅", "reserve bay room for sunday"]
    path = fitted.save(tmp_path / "entities.dse")
    again = EntityExtractor.load(path)
    assert again.predict(texts, ["book_room"] * 2) == fitted.predict(texts, ["book_room"] * 2)
    assert again.get_params() == fitted.get_params()
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["crfsuite.bin", "dingskill-entities.json"]
        meta = json.loads(zf.read("dingskill-entities.json"))
        crf = zf.read("crfsuite.bin")
    meta["version"] = 99
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dingskill-entities.json", json.dumps(meta))
        zf.writestr("crfsuite.bin", crf)
    old = tmp_path / "old.dse"
    old.write_bytes(buf.getvalue())
    with pytest.raises(EntityModelError, match=r"old.dse: entity model format version 99.*retrain"):
        EntityExtractor.load(old)
    (tmp_path / "junk.dse").write_bytes(b"\x80\x04pickle")
    with pytest.raises(EntityModelError, match="not an entity model file"):
        EntityExtractor.load(tmp_path / "junk.dse")


def test_tokens_cover_chinese_per_character_and_words():
    text = "订West Lake厅3楼"
    assert [text[s:e] for s, e in tokenize(text)] == ["订", "West", "Lake", "厅", "3", "楼"]
