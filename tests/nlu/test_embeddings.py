"""Static embeddings: the table shipped in the wordllama wheel, its use in the classifier,
and the checks that tie a saved model to the exact table it was trained with."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dingskill import IntentClassifier
from dingskill.datasets import load
from dingskill.nlu import embeddings as emb_mod
from dingskill.nlu.embeddings import EmbeddingsError, load_embeddings
from dingskill.nlu.persistence import UnsafeModelError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def emb():
    return load_embeddings("wordllama-l2-64")


def test_rows_are_unit_vectors_and_batch_equals_single(emb):
    texts = ["Book a flight to Boston", "我想请三天年假", "请帮我 book 会议室", "", "   "]
    batch = emb.transform(texts)
    assert batch.shape == (5, 64) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch[:3], axis=1), 1.0, rtol=1e-5)
    assert not batch[3:].any()  # nothing to embed: a zero row, never NaN
    for text, row in zip(texts, batch, strict=True):
        np.testing.assert_allclose(emb.transform_one(text), row, atol=1e-6)


def test_similar_requests_are_closer_than_unrelated_ones(emb):
    a, b, c = emb.transform(
        ["book a flight to boston", "reserve a plane ticket", "what is my credit score"]
    )
    assert a @ b > a @ c + 0.2


def test_the_wider_table_is_a_prefix_extension():
    wide = load_embeddings("wordllama-l2-256")
    narrow = load_embeddings("wordllama-l2-64")
    assert wide.dim == 256 and narrow.dim == 64
    np.testing.assert_array_equal(wide.table[:, :64], narrow.table)
    assert wide.digest != narrow.digest  # a model records which width it used


def test_unknown_and_missing_tables_are_clear_errors(monkeypatch):
    with pytest.raises(EmbeddingsError, match=r"unknown embeddings 'glove'.*wordllama-l2-64"):
        load_embeddings("glove")
    fake = emb_mod._Source("no_such_package_xyz", "w", "t", "x", "pip install no-such", 8)
    monkeypatch.setitem(emb_mod.KNOWN_EMBEDDINGS, "fake-8", fake)
    with pytest.raises(EmbeddingsError, match=r"'no_such_package_xyz'.*not installed.*None"):
        load_embeddings("fake-8")
    with pytest.raises(ValueError, match=r"embeddings must be None or one of"):
        IntentClassifier(embeddings="glove").fit(["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match=r"embedding_weight must be a number in \(0, 10\]"):
        IntentClassifier(embedding_weight=0).fit(["a", "b"], ["x", "y"])


def _rewrite_meta(data: bytes, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "dingskill-model.json":
                meta = json.loads(body)
                change(meta)
                body = json.dumps(meta).encode()
            dst.writestr(info, body)
    return out.getvalue()


@pytest.fixture(scope="module")
def office_en():
    train = load(ROOT / "datasets/office-en/utterances.csv")
    test = load(ROOT / "datasets/office-en/test.csv")
    return train, test


def test_model_file_records_the_table_and_refuses_another(office_en):
    train, _ = office_en
    clf = IntentClassifier(embeddings="wordllama-l2-64", random_state=0)
    clf.fit(train.texts, train.intents)
    data = clf.to_bytes()
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("dingskill-model.json"))
    rec = meta["embeddings"]
    assert {k: rec[k] for k in ("name", "sha256", "dim")} == {
        "name": "wordllama-l2-64",
        "sha256": load_embeddings("wordllama-l2-64").digest,
        "dim": 64,
    }
    assert rec["version"] and set(rec["files"]) == {
        "l2_supercat_256.safetensors",
        "l2_supercat_tokenizer_config.json",
    }
    back = IntentClassifier.from_bytes(data)
    probe = ["can I book the big meeting room at 3", "how much annual leave do I have left"]
    np.testing.assert_allclose(back.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)

    def other_table(m):
        m["embeddings"]["sha256"] = "0" * 64

    with pytest.raises(
        EmbeddingsError, match=r"trained with embeddings 'wordllama-l2-64'.*retrain"
    ):
        IntentClassifier.from_bytes(_rewrite_meta(data, other_table))

    def no_record(m):
        m["embeddings"] = None

    with pytest.raises(UnsafeModelError, match=r"'embeddings' must name 'wordllama-l2-64'"):
        IntentClassifier.from_bytes(_rewrite_meta(data, no_record))


def test_version_1_files_without_embeddings_still_load(office_en):
    train, _ = office_en
    clf = IntentClassifier(embeddings=None, random_state=0).fit(train.texts, train.intents)

    def as_v1(m):
        m["version"] = 1
        del m["embeddings"]
        del m["params"]["embeddings"]
        del m["params"]["embedding_weight"]

    old = IntentClassifier.from_bytes(_rewrite_meta(clf.to_bytes(), as_v1))
    assert old.embeddings is None and old.embedder_ is None
    probe = list(train.texts[:20])
    np.testing.assert_array_equal(old.predict(probe), clf.predict(probe))


def test_embeddings_help_on_words_never_seen_in_training(office_en):
    """The English sample's test set is written with other words than its training set."""
    train, test = office_en
    ins = np.asarray(test.intents) != "oos"
    texts = list(np.asarray(test.texts, dtype=object)[ins])
    gold = np.asarray(test.intents)[ins]
    acc = {}
    for name in (None, "wordllama-l2-64"):
        clf = IntentClassifier(embeddings=name, oos_threshold=None, random_state=0)
        acc[name] = float(np.mean(clf.fit(train.texts, train.intents).predict(texts) == gold))
    assert acc["wordllama-l2-64"] >= acc[None] + 0.03, acc
