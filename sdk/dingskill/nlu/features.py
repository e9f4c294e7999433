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

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .normalize import normalize_text

__all__ = ["TextFeaturizer", "analyze", "is_cjk"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f"
_WORD = f"[^\\W_{_CJK}]+"
_TOKEN_RE = re.compile(f"([{_CJK}]+)|({_WORD}(?:['’]{_WORD})*)")
_CJK_RE = re.compile(f"[{_CJK}]")


def is_cjk(text: str) -> bool:
    """True when ``text`` contains at least one CJK character."""
    return _CJK_RE.search(text) is not None


def analyze(
    text: str,
    char_ngram: tuple[int, int] = (2, 5),
    cjk_ngram: tuple[int, int] = (1, 3),
    normalized: bool = False,
) -> list[str]:
    """Return the feature strings of one text (normalised first unless ``normalized``)."""
    if not normalized:
        text = normalize_text(text)
    feats: list[str] = []
    append = feats.append
    cmin, cmax = char_ngram
    zmin, zmax = cjk_ngram
    prev_word = None
    for m in _TOKEN_RE.finditer(text):
        run, word = m.group(1), m.group(2)
        if run is not None:
            n_run = len(run)
            padded = "<" + run + ">"
            for n in range(zmin, zmax + 1):
                src = run if n == 1 else padded
                feats.extend(["z:" + src[i : i + n] for i in range(len(src) - n + 1)])
            if n_run == 1 and zmin > 1:
                append("z:" + run)
            prev_word = None
            continue
        append("w:" + word)
        if prev_word is not None:
            append("b:" + prev_word + " " + word)
        prev_word = word
        padded = " " + word + " "
        lp = len(padded)
        for n in range(cmin, min(cmax, lp) + 1):
            feats.extend(["c:" + padded[i : i + n] for i in range(lp - n + 1)])
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

    def _analyze(self, text: str) -> list[str]:
        return analyze(text, self.char_ngram, self.cjk_ngram)

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Build the vocabulary (sorted, so deterministic) and smooth idf."""
        df: dict[str, int] = {}
        for text in texts:
            for f in set(self._analyze(text)):
                df[f] = df.get(f, 0) + 1
        kept = sorted(f for f, c in df.items() if c >= self.min_df)
        self.vocabulary_ = {f: i for i, f in enumerate(kept)}
        n = len(texts)
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

    def transform_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and values of one text's normalised TF-IDF row."""
        vocab = self.vocabulary_
        counts: dict[int, int] = {}
        get = vocab.get
        for f in self._analyze(text):
            j = get(f)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        vals = (np.log(tf) + 1.0) * self.idf_[idx]
        norm = math.sqrt(float(vals @ vals))
        if norm > 0:
            vals /= norm
        return idx, vals

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Sparse matrix (n_texts x n_features) of normalised TF-IDF rows."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        total = 0
        for text in texts:
            idx, vals = self.transform_one(text)
            indices.append(idx)
            data.append(vals)
            total += len(idx)
            indptr.append(total)
        n_feat = len(self.vocabulary_)
        if total:
            ind = np.concatenate(indices)
            dat = np.concatenate(data)
        else:
            ind = np.zeros(0, dtype=np.int64)
            dat = np.zeros(0)
        X = sp.csr_matrix(
            (dat, ind, np.asarray(indptr, dtype=np.int64)), shape=(len(indptr) - 1, n_feat)
        )
        X.sort_indices()
        return X
