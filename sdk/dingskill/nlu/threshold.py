"""Choosing the out-of-scope confidence threshold.

Objective when out-of-scope examples exist: maximise the mean of in-scope accuracy (an
in-scope query counts as right only if it is accepted *and* labelled correctly) and
out-of-scope recall, among the thresholds that cost at most ``max_inscope_loss`` (1 point by
default) of in-scope accuracy compared with no threshold. Without the budget the plain mean
favours out-of-scope recall far too much when in-scope queries dominate, as they do in real
traffic (on CLINC150 it gave 85% in-scope accuracy for 90% oos recall).

The budget holds for new queries, not only for the ones the threshold was chosen on: a
threshold qualifies when the one-sided Clopper-Pearson upper bound (at ``level``, 95 % by
default) of the share of right answers it turns away is within the budget. Spending the
budget on the held-out rows themselves over-spends it on new data (CLINC150: 0.87 points on
the validation split became 1.31 on the test split). When even a threshold that turns away
no right answer cannot be bounded that tightly (fewer than about 300 in-scope rows), the
thresholds that turn away none qualify.

Without out-of-scope examples: the highest threshold whose in-scope false-rejection rate
stays at or below ``target_reject`` (5% by default).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta

__all__ = ["select_threshold"]


def select_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    is_oos: np.ndarray,
    predicted_oos: np.ndarray | None = None,
    target_reject: float = 0.05,
    max_inscope_loss: float = 0.01,
    level: float | None = 0.95,
) -> float:
    """Return the threshold; a query is out of scope when its confidence is below it.

    ``confidence``: top in-scope probability per query; ``correct``: the model's in-scope
    label is right (ignored for oos rows); ``is_oos``: the true label is out of scope;
    ``predicted_oos``: the model already predicts the oos class (rejected at any threshold).
    ``level``: confidence of the bound on the in-scope cost (``None``: the cost on these rows).
    """
    if level is not None and not 0.0 < level < 1.0:
        raise ValueError(f"level is a confidence between 0 and 1 (exclusive), not {level!r}")
    conf = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    is_oos = np.asarray(is_oos, dtype=bool)
    pred_oos = np.zeros_like(is_oos) if predicted_oos is None else np.asarray(predicted_oos, bool)
    ins = ~is_oos
    if not ins.any():
        raise ValueError("threshold selection needs in-scope examples")
    if not is_oos.any():
        # smallest confidence quantile rejecting at most target_reject of in-scope queries
        c = np.sort(conf[ins & ~pred_oos])
        k = int(np.floor(target_reject * ins.sum()))
        k = min(k, len(c) - 1) if len(c) else 0
        return float(c[k]) if len(c) else 0.0
    candidates = np.unique(np.concatenate([[0.0], conf]))
    # accepted iff conf >= t and not predicted oos; evaluate all candidates with sorting
    order_in = np.sort(conf[ins & correct & ~pred_oos])
    oos_conf = np.sort(conf[is_oos & ~pred_oos])
    n_in, n_oos = ins.sum(), is_oos.sum()
    pre_rejected = (is_oos & pred_oos).sum()
    lost = np.searchsorted(order_in, candidates, side="left")  # right answers turned away
    acc = (len(order_in) - lost) / n_in
    rec = (pre_rejected + np.searchsorted(oos_conf, candidates, side="left")) / n_oos
    score = 0.5 * (acc + rec)
    allowed = _cost_bound(lost, int(n_in), level) <= max_inscope_loss + 1e-12
    if not allowed.any():  # too few rows to bound any cost that tightly: turn away none
        allowed = lost == 0
    score[~allowed] = -1.0
    best = np.flatnonzero(score >= score.max() - 1e-12)
    # among ties take the middle candidate for stability
    return float(candidates[best[len(best) // 2]])


def _cost_bound(lost: np.ndarray, n: int, level: float | None) -> np.ndarray:
    """Upper bound on the share of right answers turned away, from ``lost`` of ``n`` rows:
    one-sided Clopper-Pearson at ``level``, or the share itself when ``level`` is None."""
    lost = np.asarray(lost, dtype=np.float64)
    if level is None:
        return lost / n
    return np.where(lost >= n, 1.0, beta.ppf(level, lost + 1, np.maximum(n - lost, 1)))
