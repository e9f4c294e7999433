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

Known tables (``IntentClassifier(embeddings=NAME)``):

``"wordllama-l2-64"`` (the default) and ``"wordllama-l2-256"``
    WordLlama's ``l2_supercat`` table (MIT licence, shipped in the ``wordllama`` wheel,
    32,000 tokens of the Llama 2 tokenizer, 256 columns trained Matryoshka-style so that the
    first 64 work on their own). The 64-column prefix trains about twice as fast as the full
    width for nearly the same accuracy. Strong for English; for Chinese it sees characters
    and bytes and adds little, while the CJK character n-grams keep doing the work there
    (see ``docs/evaluation.md`` for the measured effect).

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
    "KNOWN_EMBEDDINGS",
    "EmbeddingsError",
    "StaticEmbeddings",
    "load_embeddings",
]

DEFAULT_EMBEDDINGS = "wordllama-l2-64"


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

    def __post_init__(self) -> None:
        self._skip = np.array(sorted(self.skip_ids), dtype=np.int64)

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


def load_embeddings(name: str) -> StaticEmbeddings:
    """Load (once per process) the embedding table ``name``; raises :class:`EmbeddingsError`."""
    if name not in KNOWN_EMBEDDINGS:
        raise EmbeddingsError(
            f"unknown embeddings {name!r}; known: {sorted(KNOWN_EMBEDDINGS)} or None"
        )
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
        emb = StaticEmbeddings(name, digest.hexdigest(), table, tokenizer, skip)
        _CACHE[name] = emb
        return emb
