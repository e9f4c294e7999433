"""Bring your own encoder: a sentence encoder in a local folder.

For users whose machines can reach a model hub: download a model there yourself, then point
the classifier at the folder. Two layouts are read:

``IntentClassifier(embeddings="model2vec:<folder>")``
    the model2vec layout: ``model.safetensors`` (one 2-D tensor, ``embeddings``, one row per
    token id) and ``tokenizer.json`` (a Hugging Face ``tokenizers`` description). A text's
    vector is the mean of its tokens' rows (unknown and padding tokens skipped).

``IntentClassifier(embeddings="onnx:<folder>")``
    an ONNX sentence encoder: ``model.onnx`` and ``tokenizer.json``. The graph takes
    ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when it declares it) as
    int64 (batch, tokens); its first output is either (batch, dim) sentence vectors or
    (batch, tokens, dim) token vectors, which are mean-pooled over the attention mask. Needs
    ``onnxruntime`` (a dependency of dingskill); runs on one thread.

Rows are L2-normalised. Loading never executes anything from the folder: tensors are read
with ``safetensors`` (no pickle), the tokenizer from JSON, the ONNX graph from the bytes that
were hashed (so it cannot pull external data files from elsewhere) with only onnxruntime's
built-in operators; other files (``config.json``, Python files) are ignored. Each file's
SHA-256 is recorded in model files trained with the encoder, and a model is refused when the
folder's files changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["LocalEncoder", "load_local_encoder"]

_MAX_FILE = 2 * 1024**3  # refuse absurd files before reading them
_MAX_TOKENS = 128  # tokens per text given to an ONNX encoder


class LocalEncoder:
    """A model2vec table or an ONNX graph with its tokenizer; unit rows, LRU-cached."""

    def __init__(self, name, kind, tokenizer, files, run, dim, cache: int = 8192) -> None:
        self.name = name
        self.kind = kind
        self.tokenizer = tokenizer
        self.files = files
        self.digest = hashlib.sha256(
            "".join(f"{k}={v};" for k, v in sorted(files.items())).encode()
        ).hexdigest()
        self.version = kind
        self._run = run
        self._dim = int(dim)
        self._cap = int(cache)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    def describe(self) -> dict:
        """What a model file records: name, digest, width, kind, per-file SHA-256."""
        return {
            "name": self.name,
            "sha256": self.digest,
            "dim": self.dim,
            "version": self.kind,
            "files": dict(self.files),
        }

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def transform(self, texts: Sequence[str], normalized: bool = False) -> np.ndarray:
        """Unit vectors of ``texts`` (n x dim, float32); empty texts give zero rows."""
        if not normalized:
            from .normalize import normalize_text

            texts = [normalize_text(t) for t in texts]
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        with self._lock:
            todo: dict[str, list[int]] = {}
            for i, t in enumerate(texts):
                if t in self._cache:
                    self._cache.move_to_end(t)
                    out[i] = self._cache[t]
                elif t:
                    todo.setdefault(t, []).append(i)
            if todo:
                uniq = list(todo)
                vecs = np.asarray(self._run(uniq), dtype=np.float32)
                norms = np.sqrt(np.einsum("ij,ij->i", vecs, vecs))
                norms[norms == 0] = 1.0
                vecs = vecs / norms[:, None]
                for t, v in zip(uniq, vecs, strict=True):
                    out[todo[t]] = v
                    self._cache[t] = v
                while len(self._cache) > self._cap:
                    self._cache.popitem(last=False)
        return out

    def transform_one(self, text: str, normalized: bool = False) -> np.ndarray:
        return self.transform([text], normalized=normalized)[0]


def _read(folder: Path, name: str, error) -> bytes:
    path = folder / name
    if not path.is_file():
        raise error(f"{folder}: {name} is missing (expected {name} in the encoder folder)")
    if path.stat().st_size > _MAX_FILE:
        raise error(f"{path}: larger than {_MAX_FILE} bytes; not an encoder this kit reads")
    return path.read_bytes()


def _tokenizer(raw: bytes, folder: Path, error):
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any failure: not a tokenizer description
        raise error(f"{folder}/tokenizer.json: not a tokenizers description ({exc})") from None
    tok.no_padding()
    tok.no_truncation()
    return tok


def _model2vec(folder: Path, spec: str, error) -> LocalEncoder:
    from safetensors.numpy import load

    raw_w, raw_t = _read(folder, "model.safetensors", error), _read(folder, "tokenizer.json", error)
    try:
        tensors = load(raw_w)
    except Exception as exc:  # noqa: BLE001
        raise error(f"{folder}/model.safetensors: unreadable ({exc})") from None
    table = tensors.get("embeddings")
    if table is None and len(tensors) == 1:
        table = next(iter(tensors.values()))
    if table is None or table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        raise error(
            f"{folder}/model.safetensors: expected one 2-D float tensor 'embeddings', found "
            f"{ {k: (str(v.dtype), v.shape) for k, v in tensors.items()} }"
        )
    table = np.ascontiguousarray(table, dtype=np.float32)
    tok = _tokenizer(raw_t, folder, error)
    if tok.get_vocab_size(with_added_tokens=True) > table.shape[0]:
        raise error(
            f"{folder}: the tokenizer has {tok.get_vocab_size()} tokens but the table only "
            f"{table.shape[0]} rows"
        )
    skip = {
        i for t in ("[UNK]", "[PAD]", "<unk>", "<pad>") if (i := tok.token_to_id(t)) is not None
    }

    def run(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        for i, enc in enumerate(tok.encode_batch(texts, add_special_tokens=False)):
            ids = [j for j in enc.ids if j not in skip]
            if ids:
                out[i] = table[ids].mean(axis=0)
        return out

    files = {"model.safetensors": _sha(raw_w), "tokenizer.json": _sha(raw_t)}
    return LocalEncoder(spec, "model2vec", tok, files, run, table.shape[1])


def _onnx(folder: Path, spec: str, error) -> LocalEncoder:
    try:
        import onnxruntime as ort
    except ImportError:
        raise error(
            f"embeddings {spec!r} need onnxruntime, which is not installed: "
            "pip install 'dingskill[onnx]' (or pip install onnxruntime)"
        ) from None
    raw_m, raw_t = _read(folder, "model.onnx", error), _read(folder, "tokenizer.json", error)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(raw_m, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise error(f"{folder}/model.onnx: onnxruntime cannot load it ({exc})") from None
    inputs = {i.name for i in sess.get_inputs()}
    if not {"input_ids", "attention_mask"} <= inputs:
        raise error(
            f"{folder}/model.onnx: inputs {sorted(inputs)}; a sentence encoder needs "
            "'input_ids' and 'attention_mask'"
        )
    out = sess.get_outputs()[0]
    if len(out.shape) not in (2, 3) or not isinstance(out.shape[-1], int):
        raise error(
            f"{folder}/model.onnx: first output {out.name!r} has shape {out.shape}; expected "
            "(batch, dim) or (batch, tokens, dim) with a fixed dim"
        )
    tok = _tokenizer(raw_t, folder, error)
    tok.enable_truncation(_MAX_TOKENS)
    pad = tok.token_to_id("[PAD]") or tok.token_to_id("<pad>") or 0
    tok.enable_padding(pad_id=pad)
    dim = out.shape[-1]

    def run(texts: list[str]) -> np.ndarray:
        res = []
        for start in range(0, len(texts), 64):
            encs = tok.encode_batch(texts[start : start + 64])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            y = np.asarray(sess.run([out.name], feed)[0], dtype=np.float32)
            if y.ndim == 3:
                m = mask[:, :, None].astype(np.float32)
                y = (y * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
            res.append(y)
        return np.vstack(res) if res else np.zeros((0, dim), dtype=np.float32)

    files = {"model.onnx": _sha(raw_m), "tokenizer.json": _sha(raw_t)}
    return LocalEncoder(spec, f"onnxruntime {ort.__version__}", tok, files, run, dim)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


_CACHE: dict[tuple, LocalEncoder] = {}
_LOCK = threading.Lock()


def load_local_encoder(spec: str, error=ValueError) -> LocalEncoder:
    """Load ``"model2vec:<folder>"`` or ``"onnx:<folder>"`` (once per process and file
    contents); ``error`` is raised with what is wrong and what to do."""
    kind, _, where = spec.partition(":")
    folder = Path(where).expanduser()
    if not folder.is_dir():
        raise error(f"embeddings {spec!r}: {folder} is not a folder")
    key = (
        spec,
        *((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir())),
    )
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if kind == "model2vec":
            enc = _model2vec(folder, spec, error)
        elif kind == "onnx":
            enc = _onnx(folder, spec, error)
        else:
            raise error(f"embeddings {spec!r}: unknown kind {kind!r} (model2vec or onnx)")
        _CACHE[key] = enc
        return enc
