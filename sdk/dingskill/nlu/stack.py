"""Several fitted intent models read one message at once (routing across loaded skills).

Each :class:`~dingskill.nlu.classifier.IntentClassifier` scores a message with its n-gram
block (a TF-IDF row over its own vocabulary, L2-normalised over the n-grams it knows) and
its embedding block (the shared sentence encoding times its weight). :class:`ModelStack`
stacks every model's weights so that one message costs one pass over its n-grams and a few
matrix products for all of them, not a Python loop of small products per model:

- one union vocabulary (n-gram -> row), with each model's coefficients times its idf of the
  n-gram per row (0 where the model does not know it), side by side, and each model's
  squared idf per row: a message's n-gram scores are one product of its ``1 + log tf`` with
  its rows, divided by each model's norm of the TF-IDF row (another product);
- the embedding blocks' coefficients side by side, each scaled by its model's weight;
- softmax per model (its own temperature) and each model's intents best first, all models
  at once; then each model's own threshold and, only where the linear model names an
  in-scope intent, its novelty gate.

Arbitration takes these Decisions as the skills' own and keeps each as the model's view of
the text (``IntentClassifier.remember_reading``): no skill reads a message twice.

The Decisions are those of each model's ``decide`` (same intents; the confidences agree to
float32 rounding, ~1e-7, since the sums run in another order). Models that do not share n-gram ranges
and one sentence encoder are not stacked (:meth:`ModelStack.fits` says so)."""

from __future__ import annotations

from functools import lru_cache
from itertools import repeat

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
        idf = np.zeros((len(vocab), len(models)), dtype=np.float64)
        coef = np.zeros((len(vocab), k_total), dtype=np.float32)
        dense = []
        for j, m in enumerate(models):
            feats = m.featurizer_.vocabulary_
            rows = np.fromiter((vocab[f] for f in feats), dtype=np.int64, count=len(feats))
            cols = np.fromiter(feats.values(), dtype=np.int64, count=len(feats))
            lo, hi = self._start[j], self._start[j + 1]
            idf[rows, j] = m.featurizer_.idf_[cols]
            # each coefficient times its model's idf of the n-gram: a message's n-gram
            # scores are then one product of its (1 + log tf) with these rows, divided by
            # each model's norm of the row (TF-IDF, L2-normalised per model)
            coef[rows, lo:hi] = m.coef_[cols] * idf[rows, j, None]
            if self._embedder is not None:
                dense.append(m.coef_[m._n_ngrams :] * np.float32(m._weight))
        self._dense = np.hstack(dense).astype(np.float32) if dense else None
        self._intercept = np.concatenate([np.asarray(m.intercept_, np.float64) for m in models])
        self._k = k_total
        self._rows = self._table(coef, idf)
        self._unknown = len(vocab)  # the zero row: an n-gram no model knows adds nothing
        self._owner = np.repeat(np.arange(len(models)), sizes)
        self._temp = np.repeat([float(m.temperature_) for m in models], sizes)
        self._names = [str(c) for m in models for c in m.classes_]  # column -> intent
        self._top = [min(3, k) for k in sizes]  # alternatives kept per model
        self._firsts = self._start[:-1].tolist()
        # a bounded, thread-safe cache: the runtime's classification threads route a message
        # ahead, and the loop's own decision then finds it computed
        self._cached = lru_cache(maxsize=VIEW_CACHE)(self._decisions)

    @staticmethod
    def _table(coef: np.ndarray, idf: np.ndarray) -> np.ndarray:
        """Per n-gram row: its coefficients times idf, then each model's squared idf (a
        row's norm per model), and a last row of zeros for n-grams no model knows; float64,
        so that one gather and one product serve the scores and the norms."""
        table = np.zeros((coef.shape[0] + 1, coef.shape[1] + idf.shape[1]), dtype=np.float64)
        table[:-1, : coef.shape[1]] = coef
        table[:-1, coef.shape[1] :] = idf * idf
        return table

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
        feats, counts = _counted(norm, *self._ngrams)
        scores = self._intercept.copy()
        unit = None
        if feats:
            rows = np.fromiter(
                map(self._vocab.get, feats, repeat(self._unknown)), dtype=np.int64, count=len(feats)
            )
            w = np.log(np.array(counts, dtype=np.float64)) + 1.0
            # (1 + log tf) and its square times the rows: the n-gram scores and the squared
            # norm of the TF-IDF row per model, in one product
            both = np.array([w, w * w]) @ self._rows[rows]
            # a model that knows none of the n-grams has norm 0 (else >= 1: w and idf >= 1)
            norms = np.maximum(np.sqrt(both[1, self._k :]), 1.0)
            scores += both[0, : self._k] / norms[self._owner]
        if self._dense is not None:
            unit = self._embedder.transform_one(norm, normalized=True)
            scores += unit @ self._dense
        z = scores / self._temp
        # softmax per model (segments of z), then each model's intents best first: a stable
        # sort by (model, -p) orders every segment as a stable argsort of -p would
        starts = self._start[:-1]
        z -= np.maximum.reduceat(z, starts)[self._owner]
        p = np.exp(z)
        p /= np.add.reduceat(p, starts)[self._owner]
        order = np.lexsort((-p, self._owner))
        probs = p[order].tolist()
        cols = order.tolist()
        names = self._names
        firsts = self._firsts
        out = []
        for j, m in enumerate(self.models):
            lo = firsts[j]
            alts = [(names[c], probs[i]) for i, c in enumerate(cols[lo : lo + self._top[j]], lo)]
            intent, conf = alts[0]
            if m.threshold_ is not None and conf < m.threshold_:
                intent = OUT_OF_SCOPE
            elif intent != OUT_OF_SCOPE and m.far_normalized(norm, unit):  # cached per model
                intent = OUT_OF_SCOPE  # far from every example the skill was trained on
            out.append(Decision(intent, conf, alts, "model", None))
        return tuple(out)
