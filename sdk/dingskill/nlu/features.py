"""Language-aware sparse features without a word segmenter.

* Latin (and other space-delimited) words: word unigrams ``w:``, word bigrams ``b:`` and
  character n-grams of the word padded with spaces ``c:`` (like ``char_wb``).
* CJK runs (Han, kana, Hangul): character n-grams ``z:`` of the run, which work for Chinese
  without segmentation.
* Mixed text gets both.

``TextFeaturizer`` builds the vocabulary and idf, and turns texts into L2-normalised
sublinear TF-IDF rows; ``transform_one`` is the fast path for a single utterance (a list of
column indices and values) and gives exactly the same numbers as ``transform``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from ..text import CJK_CHARS
from .normalize import normalize_text

__all__ = ["TextFeaturizer", "analyze", "is_cjk"]

_CJK = CJK_CHARS
_WORD = f"[^\\W_{_CJK}]+"
_TOKEN_RE = re.compile(f"([{_CJK}]+)|({_WORD}(?:['’]{_WORD})*)")
_CJK_RE = re.compile(f"[{_CJK}]")


def is_cjk(text: str) -> bool:
    """True when ``text`` contains at least one CJK character."""
    return _CJK_RE.search(text) is not None


@lru_cache(maxsize=4096)
def _counted(
    norm: str, char_ngram: tuple, cjk_ngram: tuple
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The distinct features of one normalised text (in the order first seen) and their
    counts, shared by every featurizer with the same n-gram ranges (each loaded skill's model
    reads the same message: analysed once). Two tuples, so that a caller maps them whole."""
    counts = Counter(analyze(norm, char_ngram, cjk_ngram, True))
    return tuple(counts), tuple(counts.values())


def analyze(
    text: str,
    char_ngram: tuple[int, int] = (2, 5),
    cjk_ngram: tuple[int, int] = (1, 3),
    normalized: bool = False,
) -> list[str]:
    """Return the feature strings of one text (normalised first unless ``normalized``).

    Character n-grams of Latin text run over each stretch of words between CJK runs (joined
    by single spaces and padded with a space), so they also span word boundaries.
    """
    if not normalized:
        text = normalize_text(text)
    feats: list[str] = []
    extend = feats.extend
    cmin, cmax = char_ngram
    zmin, zmax = cjk_ngram
    words: list[str] = []

    def flush() -> None:
        extend(["w:" + w for w in words])
        extend(["b:" + a + " " + b for a, b in zip(words, words[1:], strict=False)])
        padded = " " + " ".join(words) + " "
        lp = len(padded)
        for n in range(cmin, min(cmax, lp) + 1):
            extend(["c:" + padded[i : i + n] for i in range(lp - n + 1)])
        words.clear()

    for m in _TOKEN_RE.finditer(text):
        run, word = m.group(1), m.group(2)
        if word is not None:
            words.append(word)
            continue
        if words:
            flush()
        padded = "<" + run + ">"
        for n in range(zmin, zmax + 1):
            src = run if n == 1 else padded
            extend(["z:" + src[i : i + n] for i in range(len(src) - n + 1)])
    if words:
        flush()
    return feats


class TextFeaturizer:
    """Vocabulary + idf for :func:`analyze` features; sublinear tf, L2-normalised rows."""

    def __init__(
        self,
        char_ngram: tuple[int, int] = (2, 5),
        cjk_ngram: tuple[int, int] = (1, 3),
        min_df: int = 1,
    ) -> None:
        self.char_ngram = tuple(char_ngram)
        self.cjk_ngram = tuple(cjk_ngram)
        self.min_df = int(min_df)
        self.vocabulary_: dict[str, int] = {}
        self.idf_: np.ndarray = np.zeros(0)

    def _analyze(self, text: str, normalized: bool = False) -> list[str]:
        return analyze(text, self.char_ngram, self.cjk_ngram, normalized)

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Build the vocabulary (sorted, so deterministic) and smooth idf."""
        return self._fit([self._analyze(t) for t in texts])

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """``fit(texts).transform(texts)``, analysing each text once."""
        analysed = [self._analyze(t) for t in texts]
        return self._fit(analysed)._matrix(analysed)

    def _fit(self, analysed: list[list[str]]) -> TextFeaturizer:
        df: dict[str, int] = {}
        for feats in analysed:
            for f in set(feats):
                df[f] = df.get(f, 0) + 1
        kept = sorted(f for f, c in df.items() if c >= self.min_df)
        self.vocabulary_ = {f: i for i, f in enumerate(kept)}
        n = len(analysed)
        counts = np.fromiter((df[f] for f in kept), dtype=np.float64, count=len(kept))
        self.idf_ = np.log((1.0 + n) / (1.0 + counts)) + 1.0
        return self

    def set_state(self, features: list[str], idf: np.ndarray) -> TextFeaturizer:
        """Restore a fitted state (used by persistence)."""
        self.vocabulary_ = {f: i for i, f in enumerate(features)}
        self.idf_ = np.asarray(idf, dtype=np.float64)
        return self

    @property
    def feature_names(self) -> list[str]:
        names = [""] * len(self.vocabulary_)
        for f, i in self.vocabulary_.items():
            names[i] = f
        return names

    def transform_one(self, text: str, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and values of one text's normalised TF-IDF row."""
        get = self.vocabulary_.get
        if not normalized:
            text = normalize_text(text)
        feats, counts = _counted(text, self.char_ngram, self.cjk_ngram)
        pairs = [(get(f), c) for f, c in zip(feats, counts, strict=True)]
        pairs = [(j, c) for j, c in pairs if j is not None]
        if not pairs:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter((j for j, _ in pairs), dtype=np.int64, count=len(pairs))
        tf = np.fromiter((c for _, c in pairs), dtype=np.float64, count=len(pairs))
        vals = (np.log(tf) + 1.0) * self.idf_[idx]
        norm = math.sqrt(float(vals @ vals))
        if norm > 0:
            vals /= norm
        return idx, vals

    def transform(self, texts: Iterable[str], normalized: bool = False) -> sp.csr_matrix:
        """Sparse matrix (n_texts x n_features) of normalised TF-IDF rows.

        ``normalized``: the texts already went through ``normalize_text``.
        """
        return self._matrix(self._analyze(t, normalized) for t in texts)

    def _matrix(self, analysed: Iterable[list[str]]) -> sp.csr_matrix:
        feats: list[str] = []
        lengths: list[int] = []
        for f in analysed:
            lengths.append(len(f))
            feats.extend(f)
        n_rows, n_feat = len(lengths), len(self.vocabulary_)
        # one dictionary pass over the whole batch; unknown features map to -1 and drop out
        cols = np.fromiter(
            map(self.vocabulary_.get, feats, itertools.repeat(-1)), dtype=np.int64, count=len(feats)
        )
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        known = cols >= 0
        rows, cols = rows[known], cols[known]
        X = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n_rows, n_feat))
        X.sum_duplicates()
        X.data = (np.log(X.data) + 1.0) * self.idf_[X.indices]
        return normalize(X, norm="l2", copy=False)
