"""Temperature scaling: calibrated probabilities from linear decision scores."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["expected_calibration_error", "fit_temperature", "softmax"]


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature``."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def fit_temperature(scores: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of held-out ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.arange(len(y_idx))

    def nll(log_t: float) -> float:
        z = scores / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[rows, y_idx]))

    res = minimize_scalar(nll, bounds=(-6.0, 4.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def expected_calibration_error(proba: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class confidence ``proba.max(1)`` against ``correct`` (0..1)."""
    conf = np.asarray(proba).max(axis=1)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(ece)
