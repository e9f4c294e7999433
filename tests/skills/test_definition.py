"""Manifest validation, the template sandbox, slots, and engine failure handling."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import time

import pytest
from dingskill.cli.main import main
from dingskill.runtime.local import LocalPipeline
from dingskill.runtime.terminal import default_sender
from dingskill.skills import Engine, ManifestError, Skill, TemplateError
from dingskill.skills.manifest import parse_manifest
from dingskill.skills.slots import extract_amount, extract_date, extract_duration, parse_cn_number
from dingskill.skills.templates import render

GOOD = textwrap.dedent("""\
    id: com.example.tiny
    name: Tiny
    version: 0.1.0
    languages: [zh, en]
    dataset: {train: data.csv}
    intents:
      greet: {template: "你好 {{ sender }}"}
      boom: {handler: boom}
      slow: {handler: slow}
""")


def test_errors_name_file_line_and_field():
    bad = GOOD.replace("version: 0.1.0", "version: one").replace(
        "languages: [zh, en]", "languages: [zh, fr]"
    )
    bad += "permissions: [Root.All]\n"
    with pytest.raises(ManifestError) as exc:
        parse_manifest(bad, "skills/tiny/skill.yaml")
    problems = "\n".join(exc.value.problems)
    assert "skills/tiny/skill.yaml:3: version: 'one' is not a semantic version" in problems
    assert "skills/tiny/skill.yaml:4: languages.1: 'fr' is not one of" in problems
    assert "skills/tiny/skill.yaml:10: permissions.0:" in problems


def test_semantic_checks():
    with pytest.raises(ManifestError, match="triggers.0.intent: 'nope' is not an intent"):
        parse_manifest(GOOD + "triggers: [{intent: nope, words: [x]}]\n")
    with pytest.raises(ManifestError, match="min_dingskill: needs dingskill 99.0.0"):
        parse_manifest(GOOD + "min_dingskill: 99.0.0\n")
    with pytest.raises(ManifestError, match="needs 'template', 'handler' or 'card'"):
        parse_manifest(
            GOOD + "  empty: {format: text}\n".replace("  empty", "  empty"), "s.yaml"
        ) if False else parse_manifest(
            GOOD.replace('greet: {template: "你好 {{ sender }}"}', "greet: {format: text}")
        )
    with pytest.raises(ManifestError, match=":1: not valid YAML|not valid YAML"):
        parse_manifest("id: [unclosed\n")


def test_schema_command_prints_the_published_schema(capsys):
    assert main(["schema", "skill"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["permissions"]["items"]["enum"][0] == "Card.Streaming.Write"


@pytest.mark.parametrize(
    "source",
    [
        "{{ message.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ slots.update({'x': 1}) }}",
        "{{ range(10) }}",
        "{{ cycler }}",
        "{{ message.text.__init__.__globals__ }}",
    ],
)
def test_templates_cannot_reach_python_internals(source):
    with pytest.raises(TemplateError):
        render(source, {"message": {"text": "hi"}, "slots": {}})


def test_template_errors_are_clear():
    with pytest.raises(TemplateError, match="undefined value"):
        render("{{ nope }}", {})
    with pytest.raises(TemplateError, match="template line 1"):
        render("{% if %}", {})


@pytest.mark.parametrize(
    "text,expected",
    [
        ("明天", "2026-11-25"),
        ("后天", "2026-11-26"),
        ("下周一", "2026-11-30"),
        ("周五", "2026-11-27"),
        ("12月3日", "2026-12-03"),
        ("3月5号", "2027-03-05"),
        ("2026-12-01", "2026-12-01"),
        ("2026年12月1日", "2026-12-01"),
        ("tomorrow", "2026-11-25"),
        ("next monday", "2026-11-30"),
        ("friday", "2026-11-27"),
        ("随便", None),
    ],
)
def test_dates(text, expected):
    assert extract_date(text, dt.date(2026, 11, 24)) == expected


@pytest.mark.parametrize(
    "text,expected",
    [("¥200", 200), ("两百元", 200), ("$35.5", 35.5), ("80块", 80), ("RMB 99", 99), ("没钱", None)],
)
def test_amounts(text, expected):
    assert extract_amount(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3天", 3),
        ("半天", 0.5),
        ("一天半", 1.5),
        ("两个工作日", 2),
        ("2 days", 2),
        ("half a day", 0.5),
        ("十五天", 15),
    ],
)
def test_durations(text, expected):
    assert extract_duration(text) == expected


def test_chinese_numerals():
    assert [parse_cn_number(x) for x in ["三", "十五", "两百", "一千零五", "三万二千"]] == [
        3,
        15,
        200,
        1005,
        32000,
    ]


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "skill.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "CHANGELOG.md").write_text("# 0.1.0\n")
    rows = (
        ["text,intent"]
        + [f"你好{i},greet" for i in range(12)]
        + [f"爆炸{i},boom" for i in range(12)]
    )
    rows += [f"慢慢来{i},slow" for i in range(12)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "handlers.py").write_text(
        "import time\n"
        "def boom(message, slots, context):\n    raise RuntimeError('kaputt')\n"
        "def slow(message, slots, context):\n    time.sleep(2)\n    return 'late'\n"
    )
    return Skill.load(tmp_path)


def test_handler_raising_or_hanging_falls_back(tiny):
    e = LocalPipeline([tiny], engine=Engine([tiny], handler_timeout=0.3))
    r = e.send("爆炸1")
    assert r.intent == "boom" and "kaputt" in r.error and r.text
    t0 = time.perf_counter()
    r = e.send("慢慢来1")
    assert r.intent == "slow" and r.error.startswith("timeout") and time.perf_counter() - t0 < 1.5


def test_skill_cli_validate_train_and_chat(tiny, tmp_path, capsys, monkeypatch):
    import io

    assert main(["skills", "validate", str(tmp_path)]) == 0
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "skill.yaml").write_text(GOOD.replace("id: com.example.tiny", "id: Tiny"))
    assert main(["skills", "validate", str(tmp_path / "bad")]) == 1
    assert "skill.yaml:1: id:" in capsys.readouterr().out
    assert main(["skills", "train", str(tmp_path)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("你好2\n"))
    assert main(["chat", str(tmp_path)]) == 0
    out = capsys.readouterr().out  # the sender is the OS user, never "terminal-user"
    assert f"你好 {default_sender()}" in out and "terminal-user" not in out


def test_classifier_section_chooses_the_embedding_table(tmp_path, tiny):
    assert tiny.train().embedder_.name == "use-m3"  # the default
    (tmp_path / "skill.yaml").write_text(GOOD + "classifier: {embeddings: null}\n")
    plain = Skill.load(tmp_path).train()
    assert plain.embedder_ is None and plain.predict(["你好3"])[0] == "greet"
    with pytest.raises(ManifestError) as exc:
        parse_manifest(GOOD + "classifier: {embeddings: glove}\n", "skills/tiny/skill.yaml")
    assert "skills/tiny/skill.yaml:10: classifier.embeddings:" in "\n".join(exc.value.problems)
