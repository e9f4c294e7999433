"""Validation findings, the sample datasets, and the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.datasets import load

ROOT = Path(__file__).resolve().parents[2]


def _codes(report):
    return sorted(set(report.findings["code"]))


def test_each_finding(tmp_path):
    p = tmp_path / "d.csv"
    rows = [
        "text,intent",
        '"   ",a',
        "我想请假,leave",
        "我想请假,leave",
        "我想请假！,leave",
        "我想请假,other",
        "bad\u0007char,leave",
        "x" * 600 + ",leave",
    ]
    rows += [f"leave {i},leave" for i in range(30)]
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = load(p).validate(min_examples=10, max_length=512)
    by_code = {r.code: r for r in report.findings.itertuples()}
    assert by_code["empty-text"].line == 2
    assert by_code["duplicate"].line == 4
    assert by_code["near-duplicate"].line == 5
    assert by_code["conflict"].line == 6 and "'leave'" in by_code["conflict"].message
    assert by_code["control-char"].line == 7 and "U+0007" in by_code["control-char"].message
    assert by_code["too-long"].line == 8 and "limit 512" in by_code["too-long"].message
    assert "few-examples" in by_code and "imbalance" in by_code
    assert not report.ok
    assert any(line.startswith(f"{p}:6: error conflict") for line in report.lines())


@pytest.mark.parametrize("name", ["office-zh", "office-en", "it-helpdesk-zh", "smalltalk-en"])
@pytest.mark.parametrize("part", ["utterances.csv", "test.csv"])
def test_sample_datasets_are_clean(name, part):
    report = load(ROOT / "datasets" / name / part).validate(
        min_examples=5 if part == "test.csv" else 10
    )
    assert report.errors.empty, report.lines()


def test_cli_exit_codes(tmp_path, capsys):
    good = ROOT / "datasets" / "office-zh" / "utterances.csv"
    assert main(["datasets", "validate", str(good)]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\n,leave\n请假,leave\n", encoding="utf-8")
    assert main(["datasets", "validate", str(bad), "--min-examples", "1"]) == 1
    assert f"{bad}:2: error empty-text" in capsys.readouterr().out
    warn = tmp_path / "warn.csv"
    warn.write_text("text,intent\n请假,leave\n", encoding="utf-8")
    assert main(["datasets", "validate", str(warn)]) == 0  # warnings do not fail
    assert main(["datasets", "validate", str(tmp_path / "nope.csv")]) == 1
    out = tmp_path / "split.csv"
    assert main(["datasets", "split", str(good), "-o", str(out), "--test-size", "0.25"]) == 0
    assert set(load(out).df["split"]) == {"train", "test"}
    assert main(["datasets", "convert", str(good), str(tmp_path / "o.jsonl")]) == 0
    assert len(load(tmp_path / "o.jsonl")) == len(load(good))
    assert main(["datasets", "summary", str(good)]) == 0
