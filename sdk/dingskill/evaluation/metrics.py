"""Metrics of intent predictions with an out-of-scope label."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_fscore_support

OOS = "oos"

__all__ = ["summary_metrics", "per_intent", "confusion", "confused_pairs"]


def summary_metrics(y_true, y_pred) -> dict:
    """accuracy, macro_f1, in_scope_accuracy, oos_recall, oos_precision, n, n_intents."""
    t, p = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    ins = t != OOS
    labels = sorted(set(t) | set(p))
    out = {
        "accuracy": float((t == p).mean()) if len(t) else float("nan"),
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0))
        if len(t)
        else float("nan"),
        "in_scope_accuracy": float((t[ins] == p[ins]).mean()) if ins.any() else float("nan"),
        "oos_recall": float((p[~ins] == OOS).mean()) if (~ins).any() else float("nan"),
        "oos_precision": float((t[p == OOS] == OOS).mean()) if (p == OOS).any() else float("nan"),
        "n": int(len(t)),
        "n_intents": int(len(set(t) - {OOS})),
    }
    return out


def per_intent(y_true, y_pred) -> pd.DataFrame:
    """precision, recall, f1, support per label (index ``intent``), weakest F1 first."""
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    df = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": s}, index=pd.Index(labels, name="intent")
    )
    return df.sort_values(["f1", "support"], ascending=[True, False])


def confusion(y_true, y_pred) -> pd.DataFrame:
    """Counts: rows true label, columns predicted label (every label on both axes)."""
    labels = sorted(set(y_true) | set(y_pred))
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        m[index[t], index[p]] += 1
    return pd.DataFrame(
        m, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted")
    )


def confused_pairs(cm: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """The ``top`` off-diagonal cells of ``cm`` as (true, predicted, count), most first."""
    rows = [
        {"true": t, "predicted": p, "count": int(cm.loc[t, p])}
        for t in cm.index
        for p in cm.columns
        if t != p and cm.loc[t, p] > 0
    ]
    df = pd.DataFrame(rows, columns=["true", "predicted", "count"])
    return (
        df.sort_values(["count", "true", "predicted"], ascending=[False, True, True])
        .head(top)
        .reset_index(drop=True)
    )
