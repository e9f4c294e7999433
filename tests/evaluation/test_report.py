"""evaluate() and EvaluationReport: metrics against hand-computed values, the threshold sweep,
cross-validation, learning curve, JSON, HTML and plots."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from dingskill import IntentClassifier, evaluate
from dingskill.datasets import load
from dingskill.evaluation import EvaluationReport, compare_reports
from dingskill.evaluation.metrics import summary_metrics

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


class Fixed:
    """A fitted 'model' whose predictions and confidences are given, so that every metric
    can be worked out by hand."""

    classes_ = np.array(["a", "b", "oos"])
    threshold_ = 0.5

    def __init__(self, preds, conf, classes=None):
        self.preds, self.conf = list(preds), list(conf)
        if classes is not None:
            self.classes_ = np.array(classes)

    def predict(self, texts):
        return np.array(self.preds[: len(texts)])

    def predict_proba(self, texts):
        out = []
        for p, c in zip(self.preds[: len(texts)], self.conf, strict=False):
            row = np.full(len(self.classes_), (1 - c) / (len(self.classes_) - 1))
            row[list(self.classes_).index(p)] = c
            out.append(row)
        return np.array(out)


TRUE = ["a", "a", "a", "b", "b", "oos"]
PRED = ["a", "a", "b", "b", "oos", "oos"]
CONF = [0.9, 0.8, 0.7, 0.6, 0.95, 0.4]
TEXTS = ["请假一天", "I need a day off", "订会议室", "book a room", "报销", "天气怎么样"]


def fixed_report(**kw) -> EvaluationReport:
    return evaluate(Fixed(PRED, CONF), TEXTS, TRUE, **kw)


def test_summary_metrics_match_hand_computed_values():
    m = summary_metrics(TRUE, PRED)
    # a: P 2/2 R 2/3 F1 0.8; b: P 1/2 R 1/2 F1 0.5; oos: P 1/2 R 1/1 F1 2/3
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["in_scope_accuracy"] == pytest.approx(3 / 5)
    assert m["oos_recall"] == pytest.approx(1.0)
    assert m["oos_precision"] == pytest.approx(0.5)
    assert m["n"] == 6 and m["n_intents"] == 2
    no_oos = summary_metrics(["a", "b"], ["a", "a"])
    assert np.isnan(no_oos["oos_recall"]) and np.isnan(no_oos["oos_precision"])


def test_report_tables_match_hand_computed_values():
    r = fixed_report()
    pi = r.per_intent
    assert pi.loc["a", ["precision", "recall", "f1", "support"]].tolist() == pytest.approx(
        [1.0, 2 / 3, 0.8, 3]
    )
    assert pi.loc["oos", "f1"] == pytest.approx(2 / 3)
    assert list(pi.index)[0] == "b"  # weakest first
    assert r.confusion.loc["a", "b"] == 1 and r.confusion.loc["b", "oos"] == 1
    assert r.confusion.to_numpy().sum() == 6
    pairs = r.confused_pairs
    assert list(pairs.columns) == ["true", "predicted", "count"]
    assert set(map(tuple, pairs[["true", "predicted"]].values)) == {("a", "b"), ("b", "oos")}
    # most confident mistakes first
    assert list(r.errors["text"]) == ["报销", "订会议室"]
    assert list(r.errors.columns) == ["text", "expected", "predicted", "confidence"]
    assert r.errors["confidence"].tolist() == pytest.approx([0.95, 0.7])


def test_confused_pairs_most_frequent_first():
    true = ["a"] * 3 + ["b"] * 2 + ["c"]
    pred = ["b", "b", "b", "c", "a", "a"]
    r = evaluate(
        Fixed(pred, [0.9] * 6, ["a", "b", "c"]), [f"t{i}" for i in range(6)], true, sweep=False
    )
    assert r.confused_pairs.values.tolist() == [
        ["a", "b", 3],
        ["b", "a", 1],
        ["b", "c", 1],
        ["c", "a", 1],
    ]
    assert r.threshold_sweep is None


def test_threshold_sweep_properties():
    sw = fixed_report().threshold_sweep
    assert sw["threshold"].iloc[0] == 0.0 and sw["threshold"].iloc[-1] == 1.0
    assert sw["oos_recall"].is_monotonic_increasing
    assert sw["rejected"].is_monotonic_increasing
    assert sw["in_scope_accuracy"].is_monotonic_decreasing
    at = sw.set_index("threshold")
    # threshold 0: the top class is the answer: only the last utterance is "oos"
    assert at.loc[0.0, "oos_recall"] == 1.0 and at.loc[0.0, "oos_precision"] == pytest.approx(0.5)
    assert at.loc[0.0, "in_scope_accuracy"] == pytest.approx(3 / 5)
    assert at.loc[0.0, "oos_f1"] == pytest.approx(2 / 3)
    # threshold 0.75: 订会议室 (0.7) and book a room (0.6) are rejected too
    assert at.loc[0.75, "in_scope_accuracy"] == pytest.approx(2 / 5)
    assert at.loc[0.75, "oos_precision"] == pytest.approx(1 / 4)
    assert at.loc[1.0, "in_scope_accuracy"] == 0.0 and at.loc[1.0, "rejected"] == 1.0


def test_inputs_dataset_frame_pair_and_texts_give_the_same_report():
    df = pd.DataFrame({"text": TEXTS, "intent": TRUE})
    model = Fixed(PRED, CONF)
    summaries = [
        evaluate(model, TEXTS, TRUE).summary,
        evaluate(model, df).summary,
        evaluate(model, (TEXTS, TRUE)).summary,
        evaluate(model, load(df)).summary,
    ]
    assert all(s == summaries[0] for s in summaries)
    with pytest.raises(ValueError, match="6 texts but 5 intents"):
        evaluate(model, TEXTS, TRUE[:5])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['intent'\]"):
        evaluate(model, df[["text"]])
    with pytest.raises(TypeError, match="data must be"):
        evaluate(model, 42)
    with pytest.raises(ValueError, match="cv must be 0"):
        evaluate(model, df, cv=1)


def test_json_round_trip_keeps_every_table():
    r = fixed_report(name="手写 handmade")
    r.cross_validation = pd.DataFrame([{"fold": 1, "accuracy": 0.5}, {"fold": 2, "accuracy": 1}])
    again = EvaluationReport.from_json(r.to_json())
    assert again.summary == r.summary
    assert again.threshold == 0.5 and again.meta["name"] == "手写 handmade"
    assert again.confusion.equals(r.confusion)
    pd.testing.assert_frame_equal(again.per_intent, r.per_intent, check_dtype=False)
    pd.testing.assert_frame_equal(again.errors, r.errors, check_dtype=False)
    pd.testing.assert_frame_equal(again.confused_pairs, r.confused_pairs, check_dtype=False)
    pd.testing.assert_frame_equal(again.threshold_sweep, r.threshold_sweep, check_dtype=False)
    pd.testing.assert_frame_equal(again.cross_validation, r.cross_validation, check_dtype=False)
    assert "手写" in r.to_json()  # Chinese stays readable
    assert again.to_json() == r.to_json()
    assert r.to_dict()["summary"]["accuracy"] == pytest.approx(4 / 6)


def test_nan_summary_values_survive_json():
    r = evaluate(Fixed(["a", "a"], [0.9, 0.9]), ["x", "y"], ["a", "b"])
    d = r.to_dict()["summary"]
    assert d["oos_recall"] is None
    assert np.isnan(EvaluationReport.from_json(r.to_json()).summary["oos_recall"])


def test_html_has_the_tables_and_plots_without_glyph_warnings():
    true = ["请假", "请假", "订会议室", "oos"]
    pred = ["请假", "订会议室", "订会议室", "请假"]

    model = Fixed(pred, [0.9, 0.8, 0.7, 0.6], ["oos", "请假", "订会议室"])
    r = evaluate(model, ["a", "b", "c", "d"], true)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = r._repr_html_()
    assert "dingskill-summary" in page and "in_scope_accuracy" in page
    assert "Per-intent" in page and "订会议室" in page
    assert "Most confused pairs" in page and page.count("data:image/png;base64,") == 2
    assert r.to_html().startswith("<!doctype html>")


def test_plots_return_figures_with_labels():
    import matplotlib.pyplot as plt

    r = fixed_report()
    fig = r.plot_confusion()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["a", "b", "oos"]
    fig2 = r.plot_threshold_sweep()
    ax = fig2.axes[0]
    assert any("threshold 0.50" in t.get_text() for t in ax.get_legend().get_texts())
    assert {"oos recall", "oos precision", "oos f1", "in scope accuracy"} <= {
        line.get_label() for line in ax.get_lines()
    }
    _, ax3 = plt.subplots()
    assert r.plot_confusion(ax=ax3) is ax3.figure
    with pytest.raises(ValueError, match="learning curve"):
        r.plot_learning_curve()
    plt.close("all")


@pytest.fixture(scope="module")
def office_zh():
    return (
        load(ROOT / "datasets/office-zh/utterances.csv"),
        load(ROOT / "datasets/office-zh/test.csv"),
    )


def test_cross_validation_learning_curve_and_compare(office_zh):
    import matplotlib.pyplot as plt

    train, test = office_zh
    model = IntentClassifier().fit(train.texts, train.intents)
    r = evaluate(model, test, cv=3, train=train, learning_curve=True)
    cv = r.cross_validation
    assert list(cv["fold"]) == [1, 2, 3]
    assert cv["train_size"].sum() == 2 * len(train)  # every row is held out exactly once
    assert (cv["accuracy"] > 0.5).all()
    lc = r.learning_curve
    assert list(lc["fraction"]) == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert lc["train_size"].is_monotonic_increasing and lc["train_size"].iloc[-1] == len(train)
    assert lc["train_size"].iloc[0] >= 2 * len(set(train.intents))  # every intent seen
    assert lc["accuracy"].iloc[-1] > lc["accuracy"].iloc[0]
    assert r.plot_learning_curve().axes
    sw = r.threshold_sweep
    assert sw["oos_recall"].is_monotonic_increasing
    assert sw["in_scope_accuracy"].is_monotonic_decreasing
    again = EvaluationReport.from_json(r.to_json())
    pd.testing.assert_frame_equal(again.learning_curve, lc, check_dtype=False)
    weak = IntentClassifier(oos_threshold=None).fit(train.texts[::4], train.intents[::4])
    diff = compare_reports(evaluate(weak, test), r, names=("weak", "full"))
    assert list(diff.columns) == ["f1_weak", "f1_full", "delta"]
    assert diff["delta"].mean() > 0
    assert diff["delta"].tolist() == sorted(diff["delta"])  # worst regressions first
    plt.close("all")


def test_cross_validation_refuses_too_few_examples():
    texts = ["请假", "休假", "订会议室", "订房间"]
    with pytest.raises(
        ValueError, match="3-fold cross-validation needs at least 3 utterances per intent"
    ):
        evaluate(Fixed(PRED, CONF), texts, ["a", "a", "b", "b"], cv=3)


def test_sweep_agrees_with_predict_at_the_model_threshold(office_zh):
    train, test = office_zh
    rules = [{"intent": "ask_leave", "words": ["歇一天"]}]
    model = IntentClassifier(oos_threshold=0.3, rules=rules).fit(train.texts, train.intents)
    r = evaluate(model, test)
    row = r.threshold_sweep.set_index("threshold").loc[0.3]
    for key in ("in_scope_accuracy", "oos_recall", "oos_precision", "accuracy"):
        assert row[key] == pytest.approx(r.summary[key]), key
    # a rule-decided text stays in scope at every threshold
    sw = evaluate(model, ["老板，我明儿想歇一天"], ["ask_leave"]).threshold_sweep
    assert (sw["in_scope_accuracy"] == 1.0).all()


def test_compare_reports_by_hand():
    a = fixed_report()  # F1: a 0.8, b 0.5, oos 2/3
    b = evaluate(Fixed(TRUE, [0.9] * 6), TEXTS, TRUE)  # all right: F1 1.0 each
    diff = compare_reports(b, a, names=("perfect", "fixed"))
    assert diff.index.name == "intent"
    assert diff["delta"].to_dict() == pytest.approx({"b": -0.5, "oos": -1 / 3, "a": -0.2})
    assert list(diff.index) == ["b", "oos", "a"]
    with pytest.raises(ValueError, match="two different labels"):
        compare_reports(a, b, names=("x", "x"))
    with pytest.raises(TypeError, match="expected an EvaluationReport"):
        compare_reports(a, {"f1": 1})


def test_chinese_labels_with_and_without_a_cjk_font(monkeypatch):
    import matplotlib.pyplot as plt
    from dingskill.evaluation import plots

    cm = pd.DataFrame([[2, 1], [0, 3]], index=["请假", "oos"], columns=["请假", "oos"])
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    fig = plots.plot_confusion(cm)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["\\u8bf7\\u5047", "oos"]
    monkeypatch.setattr(plots, "cjk_font", lambda: "DejaVu Sans")  # stands in for a CJK font
    before = list(matplotlib.rcParams["font.sans-serif"])
    with warnings.catch_warnings():  # DejaVu has no CJK glyphs: a real CJK font would
        warnings.filterwarnings("ignore", "Glyph")
        fig = plots.plot_confusion(cm)
    ticks = fig.axes[0].get_yticklabels()
    assert [t.get_text() for t in ticks] == ["请假", "oos"]
    assert ticks[0].get_fontfamily()[0] == "DejaVu Sans"
    assert matplotlib.rcParams["font.sans-serif"] == before  # global settings untouched
    plt.close("all")
