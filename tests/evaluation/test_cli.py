"""``dingskill train / evaluate / predict`` end to end on the sample datasets, real files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import pytest
from dingskill import IntentClassifier
from dingskill.cli.main import main
from dingskill.datasets import load
from dingskill.evaluation import EvaluationReport

ROOT = Path(__file__).resolve().parents[2]

# in-scope accuracy on test.csv measured with the defaults (office-zh 0.910, office-en 0.826),
# minus a margin of about 5 points
FLOORS = {"office-zh": 0.86, "office-en": 0.78}


def _rows(path: Path) -> int:
    """Data rows of a one-line-per-row CSV (header excluded)."""
    return len(path.read_text(encoding="utf-8").splitlines()) - 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once per sample dataset with the CLI: {name: (model dir, train stdout)}."""
    out = {}
    for name in FLOORS:
        data = ROOT / "datasets" / name
        model = tmp_path_factory.mktemp(name) / "model"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(
                [
                    "train",
                    str(data / "utterances.csv"),
                    "--test",
                    str(data / "test.csv"),
                    "-o",
                    str(model),
                ]
            )
        assert code == 0, buf.getvalue()
        out[name] = (model, buf.getvalue())
    return out


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_train_writes_model_evaluation_and_meta(name, trained):
    model, stdout = trained[name]
    data = ROOT / "datasets" / name / "utterances.csv"
    files = {"model.dsm", "evaluation.json", "meta.json"}
    if load(data).has_entities:  # annotated data ([西湖厅](room)): the entity extractor too
        files.add("entities.dse")
    assert {p.name for p in model.iterdir()} == files
    meta = json.loads((model / "meta.json").read_text(encoding="utf-8"))
    assert meta["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    n_rows = _rows(data)
    assert meta["train_utterances"] == n_rows == sum(meta["intent_counts"].values())
    assert meta["intents"] == len(meta["intent_counts"]) - ("oos" in meta["intent_counts"])
    assert meta["split"] == "file" and len(meta["sha256"]) == 64
    clf = IntentClassifier.load(model / "model.dsm")
    assert meta["threshold"] == pytest.approx(clf.threshold_)
    ev = EvaluationReport.from_json((model / "evaluation.json").read_text(encoding="utf-8"))
    assert ev.summary["in_scope_accuracy"] >= FLOORS[name]
    assert "in_scope_accuracy" in stdout and f"{ev.summary['accuracy']:.3f}" in stdout


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_evaluate_json_and_html(name, trained, tmp_path, capsys):
    model, _ = trained[name]
    test = ROOT / "datasets" / name / "test.csv"
    html = tmp_path / "report.html"
    assert main(["evaluate", str(model), str(test), "--json", "--html", str(html)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["in_scope_accuracy"] >= FLOORS[name]
    assert summary["n"] == _rows(test)
    saved_report = json.loads((model / "evaluation.json").read_text(encoding="utf-8"))
    entities = summary.pop("entities", None)  # annotated test data: the entity figures
    assert summary == pytest.approx(saved_report["summary"])  # the same model on the same data
    if entities is not None:
        assert entities["micro_f1"] == pytest.approx(
            saved_report["entities"]["summary"]["micro_f1"]
        )
    page = html.read_text(encoding="utf-8")
    assert "Most confused pairs" in page and "data:image/png;base64," in page


def test_evaluate_with_cross_validation_prints_tables(trained, capsys):
    model, _ = trained["office-zh"]
    test = ROOT / "datasets/office-zh/test.csv"
    assert main(["evaluate", str(model), str(test), "--cv", "2"]) == 0
    out = capsys.readouterr().out
    assert "2-fold cross-validation" in out and "weakest intents" in out


def test_predict_chinese_and_english(trained, capsys):
    model, _ = trained["office-zh"]
    assert main(["predict", str(model), "我想请三天年假", "帮我订一间明天下午的会议室"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[1] == "ask_leave" and "top3:" in lines[0]
    model_en, _ = trained["office-en"]
    assert main(["predict", str(model_en), "--json", "I'd like to take Friday off"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["intent"] == "ask_leave" and len(row["top"]) == 3 and row["source"] == "model"


def test_train_with_rules_split_column_and_fixed_threshold(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - intent: check_payslip\n    words: [工资条]\n", encoding="utf-8")
    out = tmp_path / "m"
    data = ROOT / "datasets/office-zh/utterances.csv"
    argv = ["train", str(data), "-o", str(out), "--rules", str(rules), "--threshold", "0.3"]
    assert main(argv) == 0
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["split"] == "stratified" and meta["rules"] == 1 and meta["threshold"] == 0.3
    n = _rows(data)
    assert meta["train_utterances"] + meta["test_utterances"] == n
    capsys.readouterr()
    assert main(["predict", str(out), "随便说说工资条"]) == 0
    fields = capsys.readouterr().out.strip().split("\t")
    assert fields[1] == "check_payslip" and fields[-1] == "rule word:工资条"
    # a split column in the data is used as it is
    rows = data.read_text(encoding="utf-8").splitlines()
    split = tmp_path / "split.csv"
    body = [f"{r},{'test' if i % 5 == 0 else 'train'}" for i, r in enumerate(rows[1:])]
    split.write_text("\n".join([rows[0] + ",split", *body]) + "\n", encoding="utf-8")
    assert main(["train", str(split), "-o", str(tmp_path / "m2")]) == 0
    meta = json.loads((tmp_path / "m2/meta.json").read_text(encoding="utf-8"))
    assert meta["split"] == "column" and meta["test_utterances"] == len(body[::5])


def test_bad_data_is_refused_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\n请假,leave\n请假,room\n订会议室,room\n", encoding="utf-8")
    out = tmp_path / "m"
    assert main(["train", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: error conflict" in err and "fix them before training" in err
    assert not out.exists()
    broken = tmp_path / "broken.csv"
    broken.write_text("text,label\nhello,greet\n", encoding="utf-8")
    assert main(["train", str(broken), "-o", str(out)]) == 1
    assert str(broken) in capsys.readouterr().err and not out.exists()


def test_bad_options_and_missing_model_are_refused(tmp_path, capsys):
    data = ROOT / "datasets/office-en/utterances.csv"
    out = tmp_path / "m"
    assert main(["train", str(data), "-o", str(out), "--threshold", "1.5"]) == 1
    assert "--threshold must be auto, none or a number in [0, 1]" in capsys.readouterr().err
    rules = tmp_path / "rules.yaml"
    rules.write_text("- intent: ask_leave\n  words: [leave]\n  colour: red\n", encoding="utf-8")
    assert main(["train", str(data), "-o", str(out), "--rules", str(rules)]) == 1
    err = capsys.readouterr().err
    assert f"{rules}: rule 0: unknown key(s) ['colour']" in err
    rules.write_text("- intent: [unclosed\n", encoding="utf-8")
    assert main(["train", str(data), "-o", str(out), "--rules", str(rules)]) == 1
    assert f"{rules}:2: invalid YAML" in capsys.readouterr().err
    assert not out.exists()
    assert main(["evaluate", str(tmp_path / "nope"), str(data)]) == 1
    assert "no model here" in capsys.readouterr().err
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.dsm").write_bytes(b"not a model")
    assert main(["predict", str(fake), "hello"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
