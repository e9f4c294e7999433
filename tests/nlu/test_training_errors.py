"""Training problems are explained in the user's words (what is wrong, what to do), never
as raw scikit-learn messages; ``dingskill evaluate --json --cv K`` reports the folds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dingskill import IntentClassifier
from dingskill.cli.main import main
from dingskill.datasets import DatasetError, load
from dingskill.nlu.classifier import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_one_intent():
    with pytest.raises(InputError, match=r"only one intent \('leave'\).*Add examples of another"):
        IntentClassifier(embeddings=None).fit(["我想请假", "请两天假"], ["leave", "leave"])


def test_too_few_examples_for_the_internal_folds():
    texts = ["我想请假", "请两天假", "订会议室"]
    with pytest.raises(InputError, match=r"'room' \(1\) has only 1.*oos_threshold=0\.5"):
        IntentClassifier(embeddings=None).fit(texts, ["leave", "leave", "room"])
    # a fixed threshold needs no folds
    IntentClassifier(embeddings=None, oos_threshold=0.5).fit(texts, ["leave", "leave", "room"])


def test_test_split_smaller_than_the_number_of_intents(tmp_path, capsys):
    rows = [(f"{w} {i}", w) for w in ("leave", "room", "expense", "payslip") for i in range(3)]
    data = tmp_path / "tiny.csv"
    pd.DataFrame(rows, columns=["text", "intent"]).to_csv(data, index=False)
    with pytest.raises(DatasetError, match=r"test split would hold 3 .* 4 intents"):
        load(data).split(test_size=0.2)
    assert main(["train", str(data), "-o", str(tmp_path / "m"), "--embeddings", "none"]) == 1
    err = capsys.readouterr().err
    assert "4 intents" in err and "--test" in err and "should be greater" not in err


def test_evaluate_json_includes_cross_validation_on_the_training_data(tmp_path, capsys):
    model = tmp_path / "it"
    train = ROOT / "datasets/it-helpdesk-zh/utterances.csv"
    test = ROOT / "datasets/it-helpdesk-zh/test.csv"
    assert main(["train", str(train), "-o", str(model), "--test", str(test)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(test), "--json", "--cv", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cv = out["cross_validation"]
    assert cv["data"] == str(train) and len(cv["folds"]) == 3
    assert 0.8 <= cv["mean"]["in_scope_accuracy"] <= 1.0
    assert sum(f["train_size"] for f in cv["folds"]) == 2 * len(load(train))
    assert main(["evaluate", str(model), str(test), "--cv", "50"]) == 1
    assert "Use fewer folds" in capsys.readouterr().err
