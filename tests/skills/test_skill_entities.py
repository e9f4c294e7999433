"""A skill whose data annotates entities trains an entity extractor beside its intent model;
the package carries it, install verifies it and the installed skill loads it."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from dingskill.skills import Skill
from dingskill.skills.packaging import PackageError, SkillHome
from dingskill.skills.packaging.archive import write_archive

ROOMS = ["西湖厅", "钱塘厅", "断桥厅", "孤山厅", "灵隐厅", "苏堤厅"]
TEMPLATES = [
    "帮我订[{r}](room)",
    "我想预订[{r}](room)开会",
    "[{r}](room)明天有空吗",
    "订一下[{r}](room)",
]
MANIFEST = """id: com.example.rooms
name: 会议室
version: 1.0.0
description: 订会议室
author: tests
languages: [zh]
min_dingskill: 0.1.0
permissions: []
dataset:
  train: utterances.csv
intents:
  book_room:
    template: "好的"
  greet:
    template: "你好"
"""


def _skill(folder, annotated: bool = True):
    folder.mkdir()
    rows = ["text,intent"]
    for i, r in enumerate(ROOMS * 2):
        t = TEMPLATES[i % len(TEMPLATES)].format(r=r)
        rows.append(f"{t if annotated else t.replace('](room)', '').replace('[', '')},book_room")
    rows += [f"{g},greet" for g in ["你好", "您好", "早上好", "晚上好", "嗨", "你好呀"] * 2]
    (folder / "utterances.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "skill.yaml").write_text(MANIFEST, encoding="utf-8")
    (folder / "CHANGELOG.md").write_text("# 1.0.0\n\nfirst\n", encoding="utf-8")
    return Skill.load(folder)


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    skill = _skill(tmp_path_factory.mktemp("s") / "rooms")
    skill.train(embeddings=None)
    return skill


def test_train_gives_an_entity_model_and_plain_text_intents(rooms):
    assert rooms.entity_model is not None
    assert rooms.entity_model.entity_types_ == ["room"]
    assert "订一下孤山厅" in rooms._data("train").texts  # the markup never reaches the intents
    (e,) = rooms.find_entities("帮我订孤山厅", "book_room")
    assert ("帮我订孤山厅"[e.start : e.end], e.entity, e.source.value) == (
        "孤山厅",
        "room",
        "model",
    )
    assert rooms.entity_model.predict(["帮我订孤山厅"])[0][0].entity == "room"


def test_unannotated_skill_has_no_entity_model(tmp_path):
    plain = _skill(tmp_path / "plain", annotated=False)
    plain.train(embeddings=None)
    assert plain.entity_model is None and plain.find_entities("帮我订孤山厅") == []


def test_package_carries_and_verifies_the_entity_model(rooms, tmp_path):
    pkg = rooms.export(tmp_path / "dist")
    with zipfile.ZipFile(pkg) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    assert "entities.dse" in members
    home = SkillHome(tmp_path / "home")
    home.install(pkg)
    (installed,) = home.load_skills()
    assert installed.is_package and installed.entity_model is not None
    assert installed.find_entities("订一下灵隐厅") == rooms.find_entities("订一下灵隐厅")
    # an entity model of another format version is refused at install, with its name
    raw = members["entities.dse"]
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        meta = json.loads(zf.read("dingskill-entities.json"))
        crf = zf.read("crfsuite.bin")
    meta["version"] = 0
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dingskill-entities.json", json.dumps(meta))
        zf.writestr("crfsuite.bin", crf)
    members["entities.dse"] = buf.getvalue()
    members.pop("RECORD")
    bad = tmp_path / "bad.skill"
    bad.write_bytes(write_archive(members))
    with pytest.raises(PackageError, match=r"entities.dse: .*version 0.*retrain"):
        SkillHome(tmp_path / "home2").install(bad)
