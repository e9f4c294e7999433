"""Pickle-free save/load: round trip, identical bytes, refusal of foreign files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from dingskill import IntentClassifier
from dingskill.nlu import UnsafeModelError


@pytest.fixture
def fitted(mixed_data):
    texts, labels = mixed_data
    rules = [{"intent": "expense", "words": ["发票"], "patterns": [r"^receipt"]}]
    return IntentClassifier(rules=rules).fit(texts, labels)


def test_round_trip_identical_predictions_and_bytes(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.skops")
    loaded = IntentClassifier.load(path)
    queries = ["我想请假", "book a room", "receipt for lunch", "开发票", "???"]
    assert list(loaded.predict(queries)) == list(fitted.predict(queries))
    np.testing.assert_array_equal(loaded.predict_proba(queries), fitted.predict_proba(queries))
    assert loaded.decide("开发票") == fitted.decide("开发票")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.threshold_ == fitted.threshold_
    assert loaded.to_bytes() == path.read_bytes() == fitted.to_bytes()


def test_zip_members_have_fixed_order_and_timestamps(fitted):
    zf = zipfile.ZipFile(io.BytesIO(fitted.to_bytes()))
    infos = zf.infolist()
    assert [i.filename for i in infos] == [
        "dingskill-model.json",
        "coef.npy",
        "idf.npy",
        "intercept.npy",
        "prototypes.npy",  # the novelty gate's examples (small data with embeddings)
    ]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


class _Boom:
    def __reduce__(self):
        return (open, ("/nonexistent-dir/should-never-exist", "w"))


def test_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.skops"
    path.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeModelError, match="pickle"):
        IntentClassifier.load(path)


def test_skops_file_naming_os_system_is_refused(tmp_path, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    schema = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "FunctionNode",
        "content": {"args": ["touch /tmp/pwned"]},
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    path = tmp_path / "evil.skops"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeModelError, match=r"os\.system"):
        IntentClassifier.load(path)
    assert calls == []


def test_tampered_members_are_refused(fitted):
    src = zipfile.ZipFile(io.BytesIO(fitted.to_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "coef.npy":
                arr = np.array([object()], dtype=object)
                b = io.BytesIO()
                np.save(b, arr, allow_pickle=True)
                data = b.getvalue()
            zf.writestr(info.filename, data)
    with pytest.raises(UnsafeModelError, match="coef.npy"):
        IntentClassifier.from_bytes(buf.getvalue())
    with zipfile.ZipFile(buf2 := io.BytesIO(), "w") as zf:
        for info in src.infolist():
            zf.writestr(info, src.read(info))
        zf.writestr("extra.pkl", b"x")
    with pytest.raises(UnsafeModelError, match="extra.pkl"):
        IntentClassifier.from_bytes(buf2.getvalue())
    with pytest.raises(UnsafeModelError, match="not a zip"):
        IntentClassifier.from_bytes(b"hello")
