"""``IntentClassifier``: language-aware TF-IDF + static embeddings + linear model, calibrated,
with rules and oos.

Example::

    from dingskill import IntentClassifier, OUT_OF_SCOPE
    clf = IntentClassifier(rules=[{"intent": "ask_leave", "words": ["请假"]}])
    clf.fit(texts, intents)              # rows labelled "oos" train an oos class
    clf.predict(["明天想请假"])           # -> array(["ask_leave"])
    clf.decide("帮我订会议室")             # -> Decision(intent=..., confidence=..., ...)
"""

from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from .. import OUT_OF_SCOPE
from .calibration import fit_temperature, softmax
from .embeddings import DEFAULT_EMBEDDINGS, EmbeddingsError, check_name, load_embeddings
from .features import TextFeaturizer
from .normalize import normalize_text
from .rules import RuleSet, validate_rules
from .threshold import select_threshold

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Decision", "IntentClassifier", "InputError"]


_PARALLEL_MIN_NNZ = 1_000_000  # below this, worker start-up costs more than it saves (a
# sample skill with the 512 encoder columns has ~0.5 M; CLINC150: 1.9 M n-grams only, 9.6 M with them)
# novelty gate (small data only, see ``_choose_gate``)
GATE_MAX_INSCOPE = 5000  # in-scope training rows up to which the gate is used
GATE_REJECT = 0.05  # share of held-out in-scope examples the gate may turn away
GATE_PER_INTENT = 64  # prototypes kept per intent
# normalised utterances whose model view (top intents, novelty gate) a fitted classifier keeps:
# greetings, commands and common requests repeat in chat; ~1 KB each, so ~4 MB at most
VIEW_CACHE = 4096


def _fit_piece(X, rows: np.ndarray, y_idx: np.ndarray, group: np.ndarray, C: float) -> tuple:
    """:func:`_fit_ovr_group` on the ``rows`` of ``X``."""
    return _fit_rows(X[rows], y_idx[rows], group, C)


def _fit_rows(part, y_part: np.ndarray, group: np.ndarray, C: float) -> tuple:
    from threadpoolctl import threadpool_limits

    labels = np.where(np.isin(y_part, group), y_part, -1)
    with threadpool_limits(limits=1, user_api="blas"):  # same sums in every process
        return _fit_ovr_group(part, labels, group, C)


def _fit_ovr_group(X, labels: np.ndarray, group: np.ndarray, C: float) -> tuple:
    """One-vs-rest linear SVMs for the class indices in ``group`` (other rows are -1)."""
    model = LinearSVC(C=C, tol=1e-3, max_iter=2000, random_state=0)
    model.fit(X, labels)
    coef, icpt = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary problem: sklearn keeps one row for the larger label
        coef = np.vstack([-coef, coef]) / 2.0
        icpt = np.array([-icpt[0], icpt[0]]) / 2.0
    keep = np.searchsorted(model.classes_, group)
    return coef[keep].astype(np.float32), icpt[keep]


class _BoundedCache:
    """A small thread-safe LRU mapping (``get`` -> None when absent)."""

    def __init__(self, size: int) -> None:
        import threading
        from collections import OrderedDict

        self._size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


def _nearest(unit: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine similarity of each unit row to its most similar prototype (``prototypes`` is
    float32 in memory: converting it per call used to be a quarter of the runtime's CPU)."""
    return (unit @ prototypes.T).max(axis=1)


def _give_back_memory() -> None:
    """Return freed heap to the operating system (glibc keeps it otherwise): the n-gram
    analysis and the encodings leave ~100 MB of it before the fits on large data."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _fit_shared(folder: str, shape: tuple, rows, y_idx, group, C: float) -> tuple:
    """:func:`_fit_piece` in a worker process on the design matrix memory-mapped from
    ``folder`` (read-only, shared with the parent: only the row slice is private)."""
    import os

    def load(name: str) -> np.ndarray:
        return np.load(os.path.join(folder, name + ".npy"), mmap_mode="r")

    X = sp.csr_matrix((load("data"), load("indices"), load("indptr")), shape=shape, copy=False)
    part = X[rows]
    del X  # unmapped before the fit: the slice is all this process holds of it
    return _fit_rows(part, y_idx[rows], group, C)


def _fit_alongside(X, y_idx: np.ndarray, pieces: list[tuple], C: float, workers: int) -> list:
    """Fit ``pieces`` (rows, group): this process takes every ``workers``-th piece and
    ``workers - 1`` worker processes the rest, at the same time. One process fewer than a
    pool of ``workers`` for the same parallelism, and the workers read ``X`` from one shared
    memory-mapped copy. Not threads: liblinear's ``rand()`` is process-global, so two fits in
    one process would change each other's results; here every piece comes out as it would
    one by one."""
    import shutil
    import tempfile

    from joblib.externals.loky import get_reusable_executor

    folder, executor = tempfile.mkdtemp(prefix="dingskill-fit-"), None
    try:
        for name in ("data", "indices", "indptr"):
            np.save(f"{folder}/{name}.npy", getattr(X, name))
        executor = get_reusable_executor(max_workers=workers - 1)
        remote = {
            i: executor.submit(_fit_shared, folder, X.shape, rows, y_idx, g, C)
            for i, (rows, g) in enumerate(pieces)
            if i % workers
        }
        done = {
            i: _fit_piece(X, rows, y_idx, g, C)
            for i, (rows, g) in enumerate(pieces)
            if i % workers == 0
        }
        done.update({i: f.result() for i, f in remote.items()})
    finally:
        if executor is not None:  # an idle worker would keep its ~0.4 GB while the model is used
            executor.shutdown(wait=True)
        shutil.rmtree(folder, ignore_errors=True)
    return [done[i] for i in range(len(pieces))]


class InputError(ValueError):
    """Bad training or prediction input (names the index / the limit)."""


@dataclass
class Decision:
    """What routing uses for one utterance."""

    intent: str
    confidence: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    source: str = "model"  # "rule" | "model"
    rule: str | None = None


def _check_texts(X, name: str = "X") -> list[str]:
    if isinstance(X, (str, bytes)):
        raise InputError(
            f"{name} must be a list of strings, got a single {type(X).__name__}; wrap it: [text]"
        )
    if X is None:
        raise InputError(f"{name} must be a list of strings, got None")
    pd = sys.modules.get("pandas")  # not imported: X cannot be a DataFrame (keeps start-up lean)
    if pd is not None and isinstance(X, pd.DataFrame):
        raise InputError(
            f"{name} must be a list/Series of strings, got a DataFrame; pass df['text']"
        )
    if isinstance(X, np.ndarray) and X.ndim != 1:
        raise InputError(f"{name} must be 1-dimensional (a list of strings), got shape {X.shape}")
    try:
        items = list(X)
    except TypeError:
        raise InputError(f"{name} must be an iterable of strings, got {type(X).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"{name}[{i}] must be str, got {type(t).__name__} ({t!r})")
    return items


def _check_classes(classes: np.ndarray, counts: np.ndarray, oos_threshold, cv: int) -> None:
    """Training data a classifier cannot learn from: say what is wrong and what to do."""
    if len(classes) < 2:
        only = f"only one intent ({str(classes[0])!r})" if len(classes) else "no intent"
        raise InputError(
            f"the training data has {only}: a classifier needs examples of at least two "
            f"intents to tell them apart. Add examples of another intent, or rows labelled "
            f"{OUT_OF_SCOPE!r} (messages the bot should not answer)."
        )
    if oos_threshold == "auto" and counts.min() < 2:
        few = [f"{str(c)!r} ({n})" for c, n in zip(classes, counts, strict=True) if n < 2]
        raise InputError(
            f"too few examples to choose the out-of-scope threshold: it is chosen on {cv} "
            f"internal held-out folds, which need at least 2 examples of every intent, but "
            f"{', '.join(few[:10])}{' …' if len(few) > 10 else ''} "
            f"{'has' if len(few) == 1 else 'have'} only 1. Add examples (5 or more per intent "
            f"work much better), or fix the threshold: oos_threshold=0.5 (dingskill train "
            f"--threshold 0.5) or None."
        )


class IntentClassifier(ClassifierMixin, BaseEstimator):
    """Intent classifier for short utterances in Chinese, English or both.

    Parameters
    ----------
    oos_threshold : "auto", float in [0, 1] or None
        "auto" picks the confidence threshold on internal held-out folds during ``fit``
        (when "oos" rows are given: the best mean of in-scope accuracy and oos recall that
        costs at most 1 point of in-scope accuracy on new queries, at 95% confidence; else a
        5% in-scope false-rejection rate, see :mod:`dingskill.nlu.threshold`); a float fixes
        it; None never answers "oos" on confidence (an "oos" class still can).
    rules : list of {"intent", "words", "patterns"} dicts applied before the model.
    embeddings : name of an embedding block (see :mod:`dingskill.nlu.embeddings`) whose unit
        sentence vector is appended to the n-gram features, or None for n-grams only. Default
        "use-m3" (multilingual USE v3); with it and small data (at most 5,000 in-scope rows)
        ``oos_threshold="auto"`` also sets a novelty gate (``gate_``): utterances less similar
        to every in-scope training example than 95 % of held-out paraphrases are "oos".
    embedding_weight : scale of the embedding block against the (unit-norm) n-gram block.
    C : regularisation of the linear SVM (larger = less regularisation).
    char_ngram, cjk_ngram : character n-gram ranges for Latin text and CJK runs.
    min_df : features seen in fewer training texts are dropped (smaller, faster model).
    cv : number of internal folds for calibration and the threshold.
    random_state : seed for the internal folds.
    n_jobs : processes fitting at once on large data, this one included (results do not
        depend on it).
    """

    def __init__(
        self,
        oos_threshold="auto",
        rules=None,
        embeddings: str | None = DEFAULT_EMBEDDINGS,
        embedding_weight: float = 1.0,
        C: float = 1.0,
        char_ngram=(3, 5),
        cjk_ngram=(1, 3),
        min_df: int = 2,
        cv: int = 2,
        random_state=0,
        n_jobs: int | None = 2,
    ) -> None:
        self.oos_threshold = oos_threshold
        self.rules = rules
        self.embeddings = embeddings
        self.embedding_weight = embedding_weight
        self.C = C
        self.char_ngram = char_ngram
        self.cjk_ngram = cjk_ngram
        self.min_df = min_df
        self.cv = cv
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def _validate_params(self) -> None:  # noqa: D401 - sklearn naming
        t = self.oos_threshold
        if not (t is None or t == "auto" or (isinstance(t, numbers.Real) and 0.0 <= t <= 1.0)):
            raise InputError(f"oos_threshold must be 'auto', a float in [0, 1] or None, got {t!r}")
        try:
            check_name(self.embeddings)
        except EmbeddingsError as exc:
            raise InputError(str(exc)) from None
        w = self.embedding_weight
        if not (isinstance(w, numbers.Real) and not isinstance(w, bool) and 0 < w <= 10):
            raise InputError(f"embedding_weight must be a number in (0, 10], got {w!r}")
        if not (isinstance(self.C, numbers.Real) and self.C > 0):
            raise InputError(f"C must be a positive number, got {self.C!r}")
        for name in ("char_ngram", "cjk_ngram"):
            v = getattr(self, name)
            if not (len(v) == 2 and 1 <= int(v[0]) <= int(v[1]) <= 8):
                raise InputError(f"{name} must be (min, max) with 1 <= min <= max <= 8, got {v!r}")
        if not (isinstance(self.cv, numbers.Integral) and self.cv >= 2):
            raise InputError(f"cv must be an integer >= 2, got {self.cv!r}")
        validate_rules(self.rules)

    def _featurizer(self) -> TextFeaturizer:
        return TextFeaturizer(tuple(self.char_ngram), tuple(self.cjk_ngram), self.min_df)

    @property
    def _weight(self) -> float:
        """The embedding block's scale."""
        return float(self.embedding_weight)

    @property
    def _n_ngrams(self) -> int:
        """Rows of ``coef_`` that belong to the n-gram block (the rest: the embedding block)."""
        return len(self.featurizer_.vocabulary_)

    def _dense(self, texts: list[str]) -> np.ndarray | None:
        """The weighted embedding block of normalised ``texts`` (None without embeddings)."""
        if self.embedder_ is None:
            return None
        return self.embedder_.transform(texts, normalized=True) * np.float32(self._weight)

    def _design(self, texts: list[str], ngrams: sp.csr_matrix):
        """Training design matrix (the n-grams, then the weighted embedding block) and the
        unit embedding rows (None without embeddings)."""
        dense = self._dense([normalize_text(t) for t in texts])
        if dense is None:
            return ngrams, None
        unit = dense / np.float32(self._weight)
        return sp.hstack([ngrams, sp.csr_matrix(dense)], format="csr"), unit

    def _scores(self, texts: list[str]):
        """Raw scores of ``texts``, their n-gram block and the gate's rejections (bool per
        text: too far from every training example; all False without a gate)."""
        texts = [normalize_text(t) for t in texts]  # once, for both blocks
        ngrams = self.featurizer_.transform(texts, normalized=True).astype(self.coef_.dtype)
        n = self._n_ngrams
        scores = np.asarray(ngrams @ self.coef_[:n], dtype=np.float64) + self.intercept_
        dense = self._dense(texts)
        far = np.zeros(len(texts), dtype=bool)
        if dense is not None:
            scores += dense @ self.coef_[n:]
            if self.gate_ is not None and len(texts):
                unit = dense / np.float32(self._weight)
                far = _nearest(unit, self.prototypes_) < self.gate_
        return scores, ngrams, far

    def _blocks_one(self, norm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """One normalised text: its n-gram columns and values, and the embedding block's
        scores per class (0.0 without embeddings)."""
        idx, vals = self.featurizer_.transform_one(norm, normalized=True)
        if self.embedder_ is None:
            return idx, vals, 0.0
        v = self.embedder_.transform_one(norm, normalized=True) * np.float32(self._weight)
        return idx, vals, v @ self.coef_[self._n_ngrams :]

    def _fit_many(self, X, y_idx: np.ndarray, jobs: list[np.ndarray]) -> list[tuple]:
        """Fit a linear model on each row subset in ``jobs``; coef (n_features x k), intercept.

        Each job's classes are split into fixed groups whose one-vs-rest problems are
        independent, so on large data the pieces run in ``n_jobs`` processes, this one and
        ``n_jobs - 1`` workers (not threads: liblinear's solver draws from the process-global
        C ``rand()``, which it seeds at every fit); the result does not depend on ``n_jobs``.
        """
        tasks = []
        for j, rows in enumerate(jobs):
            present = np.unique(y_idx[rows])
            n_groups = 2 if len(present) > 8 else 1
            for g in np.array_split(present, n_groups):
                tasks.append((j, rows, g))
        workers = max(1, int(self.n_jobs or 1))
        C = float(self.C)
        if workers > 1 and len(tasks) > 1 and X.nnz >= _PARALLEL_MIN_NNZ:
            parts = _fit_alongside(X, y_idx, [(rows, g) for _, rows, g in tasks], C, workers)
        else:  # one piece at a time: only the piece being fitted is held in memory
            parts = [_fit_piece(X, rows, y_idx, g, C) for _, rows, g in tasks]
        out = []
        k = len(self.classes_)
        for j in range(len(jobs)):
            W = np.zeros((X.shape[1], k), dtype=np.float32)
            b = np.full(k, -1e3)  # classes absent from a fold never win
            for t, (jj, _, g) in enumerate(tasks):
                if jj == j:
                    coef, icpt = parts[t]
                    parts[t] = None  # given back as the job's matrix fills (peak memory)
                    W[:, g] = coef.T
                    b[g] = icpt
            out.append((W, b))
        return out

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_views", None)  # a copy gets its own cache, bound to itself
        state.pop("_gates", None)
        state.pop("_protos_t", None)
        return state

    def fit(self, X, y) -> IntentClassifier:
        """Fit on texts ``X`` and intent labels ``y`` ("oos" rows train the oos class)."""
        self._validate_params()
        self.__dict__.pop("_views", None)
        self.__dict__.pop("_gates", None)
        texts = _check_texts(X)
        if y is None:
            raise InputError("y is required: one intent label per text")
        labels = _check_texts(y, "y")
        if len(texts) != len(labels):
            raise InputError(
                f"X and y have different lengths: {len(texts)} texts, {len(labels)} labels"
            )
        for i, t in enumerate(texts):
            if not normalize_text(t):
                raise InputError(f"X[{i}] is empty after normalisation ({t!r})")
        for i, lab in enumerate(labels):
            if not lab.strip():
                raise InputError(f"y[{i}] is an empty label")
        classes, y_idx = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
        classes = classes.astype(str)
        _check_classes(classes, np.bincount(y_idx), self.oos_threshold, int(self.cv))
        self.classes_ = classes
        self.n_features_in_ = 1
        self._ruleset = RuleSet(self.rules)
        self.featurizer_ = feat = self._featurizer()
        ngrams = feat.fit_transform(texts)
        self.embedder_ = load_embeddings(self.embeddings) if self.embeddings else None
        Xm, unit = self._design(texts, ngrams)
        del ngrams  # in Xm now
        oos_pos = np.flatnonzero(classes == OUT_OF_SCOPE)
        self._oos_index = int(oos_pos[0]) if len(oos_pos) else -1
        if unit is not None and int((y_idx != self._oos_index).sum()) > GATE_MAX_INSCOPE:
            # large data: no novelty gate, and the training encodings would only hold memory
            unit = None
            self.clear_cache()
        if Xm.nnz >= _PARALLEL_MIN_NNZ:
            _give_back_memory()
        # held-out decision scores (calibration temperature, auto threshold) and the final
        # model: all fits are independent and run together
        temperature, threshold = 1.0, None
        counts = np.bincount(y_idx)
        n_splits = int(min(self.cv, counts.min()))
        all_rows = np.arange(len(y_idx))
        folds = []
        if n_splits >= 2:
            skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
            folds = list(skf.split(np.zeros(len(y_idx)), y_idx))
        fits = self._fit_many(Xm, y_idx, [tr for tr, _ in folds] + [all_rows])
        if folds:
            scores = np.zeros((len(texts), len(classes)))
            for f, (_, te) in enumerate(folds):
                W, b = fits[f]
                fits[f] = None  # one fold model at a time (peak memory)
                scores[te] = Xm[te] @ W + b
            temperature = fit_temperature(scores, y_idx)
            if self.oos_threshold == "auto":
                proba = softmax(scores, temperature)
                threshold = self._select(proba, y_idx)
        if self.oos_threshold == "auto" and threshold is None:
            threshold = 0.0  # too few rows per class for held-out folds
        elif self.oos_threshold != "auto":
            threshold = None if self.oos_threshold is None else float(self.oos_threshold)
        self.gate_, self.prototypes_ = self._choose_gate(unit, y_idx, folds)
        W, b = fits[-1]
        self.coef_ = W.astype(np.float32)  # (n_features, n_classes); float32 as saved
        self.intercept_ = b
        self.temperature_ = float(temperature)
        self.threshold_ = threshold
        return self

    def _prototypes(self, unit: np.ndarray, y_idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Unit vectors of up to ``GATE_PER_INTENT`` in-scope examples per intent in ``rows``."""
        rng = np.random.default_rng(0)
        keep = []
        for c in np.unique(y_idx[rows]):
            if c == self._oos_index:
                continue
            r = rows[y_idx[rows] == c]
            keep.append(rng.permutation(r)[:GATE_PER_INTENT] if len(r) > GATE_PER_INTENT else r)
        # rounded to float16 as saved (a loaded model decides alike), kept as float32
        return unit[np.sort(np.concatenate(keep))].astype(np.float16).astype(np.float32)

    def _choose_gate(self, unit, y_idx: np.ndarray, folds) -> tuple:
        """The novelty gate for small training sets: an utterance whose embedding is less
        similar (cosine) to every in-scope training example than ``gate_`` is out of scope.

        ``gate_`` is the ``GATE_REJECT`` quantile of the nearest-example similarity of
        held-out in-scope examples (each against its fold's training rows): the gate turns
        away about 5 % of in-domain paraphrases (the budget the threshold uses when there are
        no oos examples), many of them wrongly classified anyway, and everything farther from the skill's
        examples than that. Small data gives the confidence threshold too few
        out-of-scope examples to learn where the domain ends; large data (CLINC150: 15,000
        rows) does not need the gate and keeps its accuracy without it.
        """
        inscope = y_idx != self._oos_index
        if (
            unit is None
            or self.oos_threshold != "auto"
            or not folds
            or inscope.sum() > GATE_MAX_INSCOPE
        ):
            return None, None
        sims = []
        for tr, te in folds:
            te = te[inscope[te]]
            if len(te):
                sims.append(_nearest(unit[te], self._prototypes(unit, y_idx, tr)))
        if not sims:
            return None, None
        gate = float(np.quantile(np.concatenate(sims), GATE_REJECT, method="lower"))
        return gate, self._prototypes(unit, y_idx, np.arange(len(y_idx)))

    def _select(self, proba: np.ndarray, y_idx: np.ndarray) -> float:
        conf, top = self._inscope_top(proba)
        is_oos = y_idx == self._oos_index
        pred_oos = top == self._oos_index
        return select_threshold(conf, top == y_idx, is_oos, pred_oos)

    def tune_threshold(self, X, y) -> float:
        """Re-choose ``threshold_`` on labelled held-out data (e.g. a validation split)."""
        self._check_fitted()
        texts = _check_texts(X)
        labels = _check_texts(y, "y")
        if len(texts) != len(labels):
            raise InputError(
                f"X and y have different lengths: {len(texts)} texts, {len(labels)} labels"
            )
        index = {c: i for i, c in enumerate(self.classes_)}
        y_idx = np.array(
            [index.get(lab, -2 if lab != OUT_OF_SCOPE else self._oos_index) for lab in labels]
        )
        is_oos = np.array([lab == OUT_OF_SCOPE for lab in labels])
        conf, top = self._inscope_top(self.predict_proba(texts))
        self.threshold_ = select_threshold(conf, top == y_idx, is_oos, top == self._oos_index)
        return self.threshold_

    # ------------------------------------------------------------------ predicting
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(
                "This IntentClassifier instance is not fitted yet. Call 'fit' with texts and "
                "intents first."
            )

    def _scores_one(self, norm: str) -> np.ndarray:
        """Raw scores of one normalised text."""
        idx, vals, dense = self._blocks_one(norm)
        s = vals @ self.coef_[idx] if len(idx) else np.zeros(len(self.classes_))
        return s + dense + self.intercept_

    def decision_function(self, X) -> np.ndarray:
        """Raw linear scores (n_texts x n_classes)."""
        self._check_fitted()
        return self._scores(_check_texts(X))[0]

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities (temperature-scaled softmax), columns = classes_."""
        return softmax(self.decision_function(X), self.temperature_)

    def _inscope_top(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = proba.argmax(axis=1)
        return proba[np.arange(len(top)), top], top

    def _labels(self, proba: np.ndarray) -> np.ndarray:
        conf, top = self._inscope_top(proba)
        out = self.classes_[top].astype(object)
        if self.threshold_ is not None:
            out[conf < self.threshold_] = OUT_OF_SCOPE
        return out

    def predict(self, X) -> np.ndarray:
        """Intent per text; "oos" when the oos class wins, confidence < ``threshold_`` or
        the text is empty after normalisation.

        Rules are applied first (a matching rule decides the label).
        """
        self._check_fitted()
        texts = _check_texts(X)
        scores, ngrams, far = self._scores(texts)
        out = self._labels(softmax(scores, self.temperature_))
        out[far] = OUT_OF_SCOPE
        for i in np.flatnonzero(np.diff(ngrams.indptr) == 0):  # no known n-gram: maybe empty
            if not normalize_text(texts[i]):
                out[i] = OUT_OF_SCOPE  # empty after normalisation: nothing to understand
        if len(self._ruleset):
            for i, t in enumerate(texts):
                m = self._ruleset.match(t)
                if m is not None:
                    out[i] = m.intent
        return out.astype(str) if len(out) else np.array([], dtype=str)

    def top_k(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable intents of one text, best first."""
        return self._top_k(self._normalized(text), k)

    def _top_k(self, norm: str, k: int) -> list[tuple[str, float]]:
        p = softmax(self._scores_one(norm), self.temperature_)
        order = np.argsort(-p, kind="stable")[: max(int(k), 0)]
        return [(str(self.classes_[j]), float(p[j])) for j in order]

    def clear_cache(self) -> None:
        """Forget cached decisions and utterance encodings (to time cold decisions, or to
        give the memory back)."""
        self.__dict__.pop("_views", None)
        self.__dict__.pop("_gates", None)
        clear = getattr(getattr(self, "embedder_", None), "clear_cache", None)
        if clear is not None:
            clear()

    def _view(self, norm: str) -> tuple[tuple[tuple[str, float], ...], bool, tuple | None]:
        """The model's view of one normalised text: its top 3 intents, whether it is out of
        scope whatever its top intent (beyond the novelty gate, or a kept out-of-scope
        reading) and the matching rule's (intent, name), if any. Kept in a bounded,
        thread-safe LRU cache (``VIEW_CACHE``), which :meth:`remember_reading` fills too."""
        views = self._view_cache()
        view = views.get(norm)
        if view is None:
            view = self._view_fresh(norm)
            views.put(norm, view)
        return view

    def _view_cache(self) -> _BoundedCache:
        views = self.__dict__.get("_views")
        if views is None:
            views = self.__dict__["_views"] = _BoundedCache(VIEW_CACHE)
        return views

    def remember_reading(self, norm: str, decision: Decision) -> None:
        """Keep ``decision``, this model's reading of the normalised ``norm`` made elsewhere
        (the stacked reading of several models, ``nlu/stack.py``), as its view of ``norm``:
        a later :meth:`decide` returns it instead of computing it again (an out-of-scope one
        as well: the entity step asks a pending flow's skill about its answers, which most
        often are no request). Only for a text no rule of this model matches (what a model
        Decision means); anything else is ignored."""
        if decision.source != "model" or not norm:
            return
        away = decision.intent == OUT_OF_SCOPE  # decide says "oos" whatever the top intent
        self._view_cache().put(norm, (tuple(decision.alternatives), away, None))

    def _view_fresh(self, norm: str) -> tuple[tuple[tuple[str, float], ...], bool, tuple | None]:
        alts = tuple(self._top_k(norm, 3))
        far = self.far_normalized(norm)  # the shared, cached encoding; a cached answer
        m = self._ruleset.match(norm, normalized=True) if len(self._ruleset) else None
        return alts, far, None if m is None else (m.intent, m.rule)

    def decide(self, text: str) -> Decision:
        """Route one utterance: a rule if one matches, else the model with the oos threshold."""
        norm = self._normalized(text)
        if not norm:  # nothing to understand: never claim an intent
            return Decision(OUT_OF_SCOPE, 0.0, [], "model", None)
        view, far, rule = self._view(norm)
        alts = list(view)
        if rule is not None:
            return Decision(rule[0], 1.0, alts, "rule", rule[1])
        intent, conf = alts[0]
        if self.threshold_ is not None and conf < self.threshold_:
            intent = OUT_OF_SCOPE
        elif far:
            intent = OUT_OF_SCOPE  # far from every example the skill was trained on
        return Decision(intent, conf, alts, "model", None)

    def decide_normalized(self, norm: str) -> Decision:
        """:meth:`decide` for an already normalised text that no rule of this model matches
        (the caller checked :meth:`match_rule`), running the novelty gate only where it can
        change the answer: when the linear model alone would name an in-scope intent. The
        same Decision as :meth:`decide`; routing across many skills calls this so that the
        gate's product with the prototypes runs for one or two skills, not all of them."""
        if not norm:
            return Decision(OUT_OF_SCOPE, 0.0, [], "model", None)
        alts = self._top_k(norm, 3)
        intent, conf = alts[0]
        if self.threshold_ is not None and conf < self.threshold_:
            intent = OUT_OF_SCOPE
        elif intent != OUT_OF_SCOPE and self.far_normalized(norm):
            intent = OUT_OF_SCOPE  # far from every example the skill was trained on
        return Decision(intent, conf, alts, "model", None)

    def beyond_gate(self, text: str) -> bool:
        """Whether the novelty gate turns ``text`` away, so that :meth:`decide` says "oos"
        unless a rule matches. Cheap: the (shared, cached) sentence encoding and one product
        with the prototypes, no n-gram features. False for a model without a gate. Routing
        across many skills asks this first and runs the full model only where it passes."""
        if self.gate_ is None:
            return False
        norm = self._normalized(text)
        if not norm:
            return True
        return self.far_normalized(norm)

    def far_normalized(self, norm: str, unit: np.ndarray | None = None) -> bool:
        """Whether the gate turns the non-empty normalised ``norm`` away (False without a
        gate); kept in a bounded cache shared by :meth:`beyond_gate`, :meth:`decide` and the
        stacked reading of several models (one prototype product per text). ``unit``: the
        text's sentence encoding when the caller holds it already."""
        closeness = self.closeness_normalized(norm, unit)
        return closeness is not None and closeness < 0.0

    def closeness_normalized(self, norm: str, unit: np.ndarray | None = None) -> float | None:
        """How far inside this model's domain the non-empty normalised ``norm`` lies: its
        cosine similarity to the nearest in-scope training example (prototype) minus the
        novelty gate (below 0: the gate turns it away). None without a gate. Cached per
        text (the gate's one prototype product)."""
        if self.gate_ is None:
            return None
        gates = self.__dict__.get("_gates")
        if gates is None:  # a bounded cache: the runtime asks again on the loop what its
            gates = self.__dict__["_gates"] = _BoundedCache(VIEW_CACHE)  # threads computed
        hit = gates.get(norm)
        if hit is not None:
            return hit
        if unit is None:
            unit = self.embedder_.transform_one(norm, normalized=True)
        nearest = float((unit @ self._prototypes_by_column()).max())
        closeness = nearest - float(self.gate_)
        gates.put(norm, closeness)
        return closeness

    def _prototypes_by_column(self) -> np.ndarray:
        """``prototypes_`` transposed into its own contiguous array (dim x prototypes): one
        text's product with it reads the memory in order, ~40 % faster than with
        ``prototypes_.T``. Made once per ``prototypes_`` object."""
        held = self.__dict__.get("_protos_t")
        if held is None or held[0] is not self.prototypes_:
            held = (self.prototypes_, np.ascontiguousarray(self.prototypes_.T))
            self.__dict__["_protos_t"] = held
        return held[1]

    def _normalized(self, text: str) -> str:
        """``text`` normalised, after the checks every single-utterance call makes."""
        self._check_fitted()
        if not isinstance(text, str):
            raise InputError(f"text must be str, got {type(text).__name__}")
        return normalize_text(text)

    def match_rule(self, text: str, normalized: bool = False) -> Decision | None:
        """The rule decision :meth:`decide` would return for ``text``, or None when no rule
        matches (the model is not run unless a rule matches). ``normalized``: ``text``
        already went through ``normalize_text`` (routing normalises a message once)."""
        norm = text if normalized and isinstance(text, str) else self._normalized(text)
        if not norm or not len(self._ruleset):
            return None
        m = self._ruleset.match(norm, normalized=True)  # alone: the model runs only on a hit
        return (
            None
            if m is None
            else Decision(m.intent, 1.0, list(self._view(norm)[0]), "rule", m.rule)
        )

    def explain(self, text: str, k: int = 10) -> pd.DataFrame:
        """Features of ``text`` that pushed the predicted intent most, with their weights.

        Columns: feature, intent, value (tf-idf), coef, weight (= value * coef), sorted by
        absolute weight. With embeddings, one row ``semantic:<name>`` carries the whole push
        of the embedding block (value = ``embedding_weight``).
        """
        idx, vals, dense = self._blocks_one(self._normalized(text))
        scores = (vals @ self.coef_[idx] if len(idx) else 0.0) + dense + self.intercept_
        j = int(np.argmax(scores))
        names = self.featurizer_.feature_names
        feats = [names[i] for i in idx]
        coefs = self.coef_[idx, j].astype(np.float64)
        values = np.asarray(vals, dtype=np.float64)
        if self.embedder_ is not None:  # the embedding block as one row: its whole push
            w = float(self._weight)
            feats.append(f"semantic:{self.embeddings}")
            values = np.append(values, w)
            coefs = np.append(coefs, float(dense[j]) / w)
        weights = values * coefs
        order = np.argsort(-np.abs(weights), kind="stable")[: max(int(k), 0)]
        import pandas as pd

        return pd.DataFrame(
            {
                "feature": [feats[o] for o in order],
                "intent": [str(self.classes_[j])] * len(order),
                "value": values[order],
                "coef": coefs[order],
                "weight": weights[order],
            }
        )

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Pickle-free, byte-reproducible serialisation of the fitted model."""
        from .persistence import dumps

        return dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> IntentClassifier:
        """Inverse of :meth:`to_bytes`; raises ``UnsafeModelError`` on unknown content."""
        from .persistence import loads

        return loads(data)

    def save(self, path) -> Path:
        """Write :meth:`to_bytes` to ``path`` and return it."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path) -> IntentClassifier:
        """Load a model written by :meth:`save`."""
        return cls.from_bytes(Path(path).read_bytes())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
