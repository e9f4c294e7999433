"""Entity metrics (exact, partial, per type, confusions, worst errors), evaluate() and
``dingskill evaluate`` on annotated data, and ``dingskill bench entities`` on a slice of the
shared SNIPS / CAIS files and without its data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.evaluation import EvaluationReport, evaluate
from dingskill.evaluation.entity_metrics import entity_metrics
from dingskill.nlu import EntityExtractor, IntentClassifier
from dingskill.nlu.entity import Entity

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _e(s, t, typ, conf=1.0):
    return Entity(s, t, typ, None, conf)


def test_exact_partial_confusions_and_errors():
    texts = ["订西湖厅明天", "book lake room friday", "hi"]
    gold = [
        [{"start": 1, "end": 4, "entity": "room"}, {"start": 4, "end": 6, "entity": "date"}],
        [{"start": 5, "end": 14, "entity": "room"}, {"start": 15, "end": 21, "entity": "date"}],
        [],
    ]
    pred = [
        [_e(1, 4, "room"), _e(4, 6, "time", 0.9)],  # right; wrong type
        [_e(5, 9, "room", 0.8)],  # partial span; a miss
        [_e(0, 2, "room", 0.7)],  # spurious
    ]
    ev = entity_metrics(texts, gold, pred)
    s = ev.summary
    assert (s["gold"], s["predicted"]) == (4, 4)
    assert s["micro_precision"] == pytest.approx(1 / 4) and s["micro_recall"] == pytest.approx(
        1 / 4
    )
    # partial: the room span of row 2 overlaps its gold room
    assert s["partial_micro_f1"] > s["micro_f1"]
    assert ev.per_type.loc["room", "support"] == 2 and ev.per_type.loc["date", "f1"] == 0
    assert ev.confusions.to_dict("records") == [
        {"expected": "date", "predicted": "time", "count": 1}
    ]
    kinds = ev.errors["kind"].tolist()
    assert kinds == ["wrong type", "wrong span", "spurious", "missed"]
    assert ev.errors.iloc[-1]["expected"] == "friday/date"


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    d = tmp_path_factory.mktemp("ann")
    rows = ["text,intent"]
    rooms = ["西湖厅", "钱塘厅", "断桥厅", "孤山厅", "灵隐厅", "苏堤厅", "玉泉厅", "云栖厅"]
    days = ["明天", "周五", "后天", "下周一"]
    for i, r in enumerate(rooms):
        rows += [f"帮我订[{r}](room),book_room", f"[{days[i % 4]}](date)用[{r}](room),book_room"]
        rows += [
            f"[{days[i % 4]}](date)我想请假,ask_leave",
            f"请假[{days[(i + 1) % 4]}](date)一天,ask_leave",
        ]
    (d / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    test = ["text,intent", "帮我订[云栖厅](room),book_room", "[后天](date)我想请假,ask_leave"]
    (d / "test.csv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return d


def test_evaluate_reports_entities(annotated):
    from dingskill.datasets import load

    train, test = load(annotated / "train.csv"), load(annotated / "test.csv")
    clf = IntentClassifier(embeddings=None, oos_threshold=None).fit(train.texts, train.intents)
    ext = EntityExtractor(max_iterations=50).fit(train.texts, train.entities, train.intents)
    report = evaluate(clf, test, entity_model=ext)
    assert report.entities.summary["gold"] == 2
    assert set(report.entities.per_type.columns) >= {"precision", "recall", "f1", "partial_f1"}
    again = EvaluationReport.from_json(report.to_json())
    assert again.entities.summary == report.entities.summary
    assert "Entities" in report._repr_html_()
    with pytest.raises(ValueError, match="annotated data"):
        evaluate(clf, (test.texts, test.intents), entity_model=ext)


def test_cli_train_and_evaluate_with_entities(annotated, tmp_path, capsys):
    out = tmp_path / "model"
    args = ["train", str(annotated / "train.csv"), "--test", str(annotated / "test.csv")]
    assert main([*args, "-o", str(out), "--embeddings", "none"]) == 0
    assert (out / "entities.dse").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out), str(annotated / "test.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"micro_f1", "macro_f1", "partial_micro_f1", "per_type"} <= set(result["entities"])


def test_bench_entities_without_data_is_one_line(tmp_path, capsys):
    code = main(["bench", "entities", "--data-home", str(tmp_path / "nowhere"), "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "nowhere/snips/train.jsonl" in err[0] and "--data-home" in err[0]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the project")
def test_bench_entities_on_a_slice(tmp_path, capsys):
    home = tmp_path / "data"
    for name, n_train in (("snips", 150), ("cais", 150)):
        (home / name).mkdir(parents=True)
        lines = (SHARED / name / "train.jsonl").read_text(encoding="utf-8").splitlines()
        test = (SHARED / name / "test.jsonl").read_text(encoding="utf-8").splitlines()
        # every intent in the slice: take rows spread over the file
        step = len(lines) // n_train
        (home / name / "train.jsonl").write_text("\n".join(lines[::step]) + "\n", encoding="utf-8")
        (home / name / "test.jsonl").write_text("\n".join(test[::35]) + "\n", encoding="utf-8")
    fast = ["--embeddings", "none", "--json"]
    assert main(["bench", "entities", "--data-home", str(home), *fast]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = {"micro_f1", "macro_f1", "baseline_micro_f1", "intent_accuracy", "train_seconds",
            "predict_p50_ms", "predict_p99_ms", "peak_rss_mb"}  # fmt: skip
    for name in ("snips", "cais"):
        figures = result["datasets"][name]
        assert keys <= set(figures)
        assert 30 < figures["micro_f1"] <= 100 and 0 < figures["baseline_micro_f1"] <= 100
    # any pair of files under a name of one's own
    pair = [
        "--train",
        str(home / "cais" / "train.jsonl"),
        "--test",
        str(home / "cais" / "test.jsonl"),
    ]
    assert main(["bench", "entities", *pair, "--name", "mine", *fast]) == 0
    assert list(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["datasets"]) == [
        "mine"
    ]
