"""Several fitted intent models read one message at once (routing across loaded skills).

Each :class:`~dingskill.nlu.classifier.IntentClassifier` scores a message with its n-gram
block (a TF-IDF row over its own vocabulary, L2-normalised over the n-grams it knows) and
its embedding block (the shared sentence encoding times its weight). :class:`ModelStack`
stacks every model's weights so that one message costs one pass over its n-grams and a few
matrix products for all of them, not a Python loop of small products per model:

- one union vocabulary (n-gram -> row), with each model's idf per row (0 where the model
  does not know the n-gram) and each model's coefficients per row, side by side;
- the embedding blocks' coefficients side by side, each scaled by its model's weight;
- softmax per model (its own temperature), then each model's own threshold and, only where
  the linear model names an in-scope intent, its novelty gate.

The Decisions are those of each model's ``decide`` (same intents; the confidences agree to
float32 rounding, ~1e-7, since the sums run in another order). Models that do not share n-gram ranges
and one sentence encoder are not stacked (:meth:`ModelStack.fits` says so)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import OUT_OF_SCOPE
from .classifier import VIEW_CACHE, Decision, IntentClassifier
from .features import _counted

__all__ = ["ModelStack"]


class ModelStack:
    """The stacked weights of ``models`` (fitted, same n-gram ranges, one encoder)."""

    def __init__(self, models: list) -> None:
        if not self.fits(models):
            raise ValueError("models must be fitted IntentClassifiers sharing n-grams and encoder")
        self.models = list(models)
        first = models[0].featurizer_
        self._ngrams = (first.char_ngram, first.cjk_ngram)
        self._embedder = models[0].embedder_
        vocab: dict[str, int] = {}
        for m in models:
            for f in m.featurizer_.vocabulary_:
                vocab.setdefault(f, len(vocab))
        self._vocab = vocab
        sizes = [len(m.classes_) for m in models]
        self._start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        k_total = int(self._start[-1])
        self._idf = np.zeros((len(vocab), len(models)), dtype=np.float64)
        self._coef = np.zeros((len(vocab), k_total), dtype=np.float32)
        dense = []
        for j, m in enumerate(models):
            feats = m.featurizer_.vocabulary_
            rows = np.fromiter((vocab[f] for f in feats), dtype=np.int64, count=len(feats))
            cols = np.fromiter(feats.values(), dtype=np.int64, count=len(feats))
            lo, hi = self._start[j], self._start[j + 1]
            self._idf[rows, j] = m.featurizer_.idf_[cols]
            self._coef[rows, lo:hi] = m.coef_[cols]
            if self._embedder is not None:
                dense.append(m.coef_[m._n_ngrams :] * np.float32(m._weight))
        self._dense = np.hstack(dense).astype(np.float32) if dense else None
        self._intercept = np.concatenate([np.asarray(m.intercept_, np.float64) for m in models])
        self._owner = np.repeat(np.arange(len(models)), sizes)
        self._temp = np.repeat([float(m.temperature_) for m in models], sizes)
        # a bounded, thread-safe cache: the runtime's classification threads route a message
        # ahead, and the loop's own decision then finds it computed
        self._cached = lru_cache(maxsize=VIEW_CACHE)(self._decisions)

    def clear_cache(self) -> None:
        """Forget cached readings (to time cold decisions)."""
        self._cached.cache_clear()

    @staticmethod
    def fits(models: list) -> bool:
        """Whether ``models`` can be stacked: fitted intent models with the same n-gram
        ranges and the very same sentence encoder (or none)."""
        if not models or not all(
            type(m) is IntentClassifier and hasattr(m, "coef_") for m in models
        ):
            return False
        first = models[0]
        key = (first.featurizer_.char_ngram, first.featurizer_.cjk_ngram)
        return all(
            (m.featurizer_.char_ngram, m.featurizer_.cjk_ngram) == key
            and m.embedder_ is first.embedder_
            for m in models
        )

    def decisions(self, norm: str) -> tuple[Decision, ...]:
        """Each model's Decision for the normalised ``norm`` (no rule matched), in order."""
        return self._cached(norm)

    def _decisions(self, norm: str) -> tuple[Decision, ...]:
        n = len(self.models)
        if not norm:
            return tuple(Decision(OUT_OF_SCOPE, 0.0, [], "model", None) for _ in range(n))
        get = self._vocab.get
        pairs = [(get(f), c) for f, c in _counted(norm, *self._ngrams)]
        pairs = [(i, c) for i, c in pairs if i is not None]
        scores = self._intercept.copy()
        if pairs:
            rows = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
            tf = np.fromiter((c for _, c in pairs), dtype=np.float64, count=len(pairs))
            vals = (np.log(tf) + 1.0)[:, None] * self._idf[rows]  # n-grams x models
            norms = np.sqrt(np.einsum("ij,ij->j", vals, vals))
            norms[norms == 0] = 1.0
            vals /= norms
            scores += np.einsum("ik,ik->k", vals[:, self._owner], self._coef[rows])
        unit = None
        if self._dense is not None:
            unit = self._embedder.transform_one(norm, normalized=True)
            scores += unit @ self._dense
        z = scores / self._temp
        out = []
        for j, m in enumerate(self.models):
            lo, hi = self._start[j], self._start[j + 1]
            p = z[lo:hi] - z[lo:hi].max()
            np.exp(p, out=p)
            p /= p.sum()
            order = np.argsort(-p, kind="stable")[:3]
            alts = [(str(m.classes_[i]), float(p[i])) for i in order]
            intent, conf = alts[0]
            if m.threshold_ is not None and conf < m.threshold_:
                intent = OUT_OF_SCOPE
            elif intent != OUT_OF_SCOPE and m.far_normalized(norm):  # cached per model
                intent = OUT_OF_SCOPE  # far from every example the skill was trained on
            out.append(Decision(intent, conf, alts, "model", None))
        return tuple(out)
