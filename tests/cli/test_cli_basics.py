"""The command line as a newcomer meets it: help on every option, a fast ``--help``, the
published schemas."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from dingskill.cli.main import build_parser, main
from dingskill.notebook.regression import CaseError, load_cases

# what `dingskill --help` must not import: each costs tenths of a second to seconds
HEAVY = ("pandas", "numpy", "scipy", "sklearn", "jsonschema", "matplotlib", "cryptography")


def _options(parser: argparse.ArgumentParser, prefix: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{prefix} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield f"{prefix} {'/'.join(action.option_strings) or action.dest}", action


def test_every_option_and_argument_has_help_text():
    missing = [name for name, a in _options(build_parser(), "dingskill") if not a.help]
    assert not missing, "options without help text:\n" + "\n".join(missing)


def test_help_imports_no_data_science_stack():
    code = (
        "import sys; from dingskill.cli.main import build_parser; build_parser().format_help();"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_schema_conversations_is_published(capsys):
    assert main(["schema", "conversations"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["case", "text", "expected_intent"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"case": "a", "text": "x"}', "field 'expected_intent': is missing"),
        (
            '{"case": "a", "text": "x", "expected_intent": "y", "expected_intnet": "y"}',
            "field 'expected_intnet': is not a field of a case",
        ),
        ('{"case": "a", "text": 3, "expected_intent": "y"}', "field 'text': 3 is not of type"),
        (
            '{"case": "a", "text": "x", "expected_intent": "y", "conversation_type": "room"}',
            "one of",
        ),
        ("[1, 2]", "a case line is a JSON object"),
    ],
)
def test_case_file_errors_name_line_and_field(tmp_path, line, message):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"case": "ok", "text": "你好", "expected_intent": "greet"}\n' + line + "\n")
    with pytest.raises(CaseError, match=f"cases.jsonl:2: .*{message}"):
        load_cases(path)


def test_datasets_validate_output(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text(
        "text,intent\n你好,greet\n你好啊,greet\n查工资,\n查工资,salary\nhi,greet\n",
        encoding="utf-8",
    )
    assert main(["datasets", "validate", str(data)]) == 1
    out = capsys.readouterr().out
    assert "nan" not in out and "''" not in out
    # the unlabelled row: one finding naming the labelled twin, no conflict, no intent ''
    assert out.count("查工资") == 0 and out.count(f"{data}:4: error empty-intent") == 1
    assert "line 5 labels the same text 'salary'" in out and "conflict" not in out
    assert f"{data}: warning few-examples: intent 'greet'" in out
    assert main(["datasets", "validate", str(data), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert [f["line"] for f in findings] == [4, None, None]
    assert all(isinstance(f["line"], int) or f["line"] is None for f in findings)


def test_missing_column_suggests_the_option(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("utterance,label\n你好,greet\n", encoding="utf-8")
    assert main(["datasets", "validate", str(data)]) == 1
    assert "--text-col" in capsys.readouterr().out


@pytest.mark.parametrize(
    "module, absent",
    [
        # test-conversations / schema conversations without the notebook extra
        ("dingskill.notebook.regression", ("ipywidgets", "matplotlib")),
        # doctor, run --print-config: the configuration without skills and models
        ("dingskill.runtime.config", ("sklearn", "pandas", "jsonschema")),
    ],
)
def test_light_modules_stay_light(module, absent):
    code = f"import sys, {module}; print([m for m in {absent!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_command_run_outside_the_project_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DINGSKILL_PROJECT", raising=False)
    assert main(["bench", "runtime", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "no dingskill project" in err and "DINGSKILL_PROJECT" in err
