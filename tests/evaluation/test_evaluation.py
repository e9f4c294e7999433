"""Evaluation metrics, report serialisation and plots, and the train/evaluate/predict CLI."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from dingskill import IntentClassifier, evaluate
from dingskill.cli.main import main
from dingskill.datasets import load
from dingskill.evaluation import EvaluationReport, compare_reports
from dingskill.evaluation.metrics import summary_metrics

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


class Fixed:
    """A fitted 'model' whose predictions are given: metrics can be computed by hand."""

    classes_ = np.array(["leave", "room", "oos"])
    threshold_ = 0.5

    def __init__(self, preds, conf):
        self.preds, self.conf = preds, conf

    def predict(self, texts):
        return np.array(self.preds[: len(texts)])

    def predict_proba(self, texts):
        out = []
        for p, c in zip(self.preds, self.conf, strict=True):
            row = np.full(3, (1 - c) / 2)
            row[list(self.classes_).index(p)] = c
            out.append(row)
        return np.array(out)


TRUE = ["leave", "leave", "room", "room", "oos", "oos"]
PRED = ["leave", "room", "room", "oos", "oos", "leave"]
CONF = [0.9, 0.6, 0.8, 0.7, 0.9, 0.55]


def test_metrics_match_hand_computed_values():
    m = summary_metrics(TRUE, PRED)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["in_scope_accuracy"] == pytest.approx(2 / 4)
    assert m["oos_recall"] == pytest.approx(1 / 2)
    assert m["oos_precision"] == pytest.approx(1 / 2)
    assert m["n"] == 6 and m["n_intents"] == 2


def test_report_tables_and_sweep():
    r = evaluate(Fixed(PRED, CONF), [f"t{i}" for i in range(6)], TRUE)
    assert r.confusion.loc["leave", "room"] == 1 and r.confusion.loc["oos", "leave"] == 1
    assert r.per_intent.loc["room", "recall"] == pytest.approx(0.5)
    assert set(map(tuple, r.confused_pairs[["true", "predicted"]].values)) == {
        ("leave", "room"),
        ("room", "oos"),
        ("oos", "leave"),
    }
    assert list(r.errors["text"]) == ["t3", "t1", "t5"]  # most confident mistakes first
    sw = r.threshold_sweep
    assert sw["oos_recall"].is_monotonic_increasing
    assert sw.loc[sw["threshold"] == 0.0, "oos_recall"].item() == pytest.approx(0.5)
    assert sw.loc[sw["threshold"] == 1.0, "oos_recall"].item() == 1.0
    assert sw.loc[sw["threshold"] == 1.0, "in_scope_accuracy"].item() == 0.0


def test_json_round_trip_html_and_plots():
    r = evaluate(Fixed(PRED, CONF), [f"请假{i}" for i in range(6)], TRUE, name="手写")
    again = EvaluationReport.from_json(r.to_json())
    assert again.summary == r.summary
    assert again.confusion.equals(r.confusion)
    assert len(again.errors) == 3 and again.threshold == 0.5
    html = r._repr_html_()
    assert "Most confused pairs" in html and "data:image/png;base64" in html
    for fig in (r.plot_confusion(), r.plot_threshold_sweep()):
        assert fig.axes
    with pytest.raises(ValueError, match="learning curve"):
        r.plot_learning_curve()


@pytest.fixture(scope="module")
def office_zh():
    return load(ROOT / "datasets/office-zh/utterances.csv"), load(
        ROOT / "datasets/office-zh/test.csv"
    )


def test_cross_validation_learning_curve_and_compare(office_zh):
    train, test = office_zh
    model = IntentClassifier().fit(train.texts, train.intents)
    r = evaluate(model, test, cv=3, train=train, learning_curve=True)
    assert list(r.cross_validation["fold"]) == [1, 2, 3]
    lc = r.learning_curve
    assert len(lc) == 5 and lc["train_size"].is_monotonic_increasing
    assert lc["accuracy"].iloc[-1] > lc["accuracy"].iloc[0]
    weak = IntentClassifier(oos_threshold=None).fit(train.texts[::4], train.intents[::4])
    diff = compare_reports(evaluate(weak, test), r, names=("weak", "full"))
    assert diff["delta"].sum() > 0


@pytest.mark.parametrize(
    "name,floor",
    [("office-zh", 0.85), ("office-en", 0.75), ("it-helpdesk-zh", 0.80), ("smalltalk-en", 0.75)],
)
def test_cli_train_evaluate_predict(name, floor, tmp_path, capsys):
    data = ROOT / "datasets" / name
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                str(data / "utterances.csv"),
                "--test",
                str(data / "test.csv"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert {p.name for p in out.iterdir()} == {"model.dsm", "evaluation.json", "meta.json"}
    capsys.readouterr()
    assert main(["evaluate", str(out), str(data / "test.csv"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["accuracy"] >= floor
    assert main(["predict", str(out), "我想请三天年假"]) == 0


def test_cli_refuses_bad_data_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\n请假,leave\n请假,room\n", encoding="utf-8")
    assert main(["train", str(bad), "-o", str(tmp_path / "m")]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:3: error conflict" in out and not (tmp_path / "m").exists()
    assert main(["evaluate", str(tmp_path / "nope"), str(bad)]) == 1
