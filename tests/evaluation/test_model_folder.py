"""The model folder of `dingskill train` as a library API: save, load, fingerprint."""

from __future__ import annotations

import pytest
from dingskill.evaluation import evaluate
from dingskill.evaluation.model_folder import (
    load_model_folder,
    model_file,
    save_model_folder,
    training_fingerprint,
)
from dingskill.nlu import IntentClassifier

TEXTS = [
    "我想请假",
    "请三天假",
    "工资条在哪",
    "查一下工资",
    "book a room",
    "reserve a meeting room",
] * 3
INTENTS = ["leave", "leave", "pay", "pay", "room", "room"] * 3


def test_save_and_load_round_trip(tmp_path):
    model = IntentClassifier(oos_threshold=None, embeddings=None).fit(TEXTS, INTENTS)
    report = evaluate(model, (TEXTS[:6], INTENTS[:6]), sweep=False)
    meta = {"sha256": training_fingerprint(TEXTS, INTENTS), "seed": 0}
    folder = save_model_folder(tmp_path / "m", model, report, meta)
    assert sorted(p.name for p in folder.iterdir()) == ["evaluation.json", "meta.json", "model.dsm"]
    back = load_model_folder(folder)
    assert back.meta == meta and back.evaluation.summary["accuracy"] == report.summary["accuracy"]
    assert list(back.model.predict(["我想请假"])) == list(model.predict(["我想请假"]))
    assert load_model_folder(folder / "model.dsm").model is not None
    with pytest.raises(FileNotFoundError, match="dingskill train"):
        model_file(tmp_path / "nothing")


def test_fingerprint_ignores_order_and_width():
    a = training_fingerprint(["ＡＢＣ", "x"], ["i", "j"])
    assert a == training_fingerprint(["x", "abc"], ["j", "i"])
    assert a != training_fingerprint(["x", "abc"], ["i", "j"])
