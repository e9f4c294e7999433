"""``evaluate(model, data)``: held-out metrics, threshold sweep, cross-validation, learning curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from .metrics import OOS, confused_pairs, confusion, per_intent, summary_metrics

__all__ = ["evaluate", "as_texts_intents"]


def as_texts_intents(data, intents=None) -> tuple[list[str], list[str]]:
    """Accept a Dataset, a DataFrame with text/intent columns, or (texts, intents)."""
    if intents is not None:
        texts, labels = list(data), list(intents)
    elif hasattr(data, "texts") and hasattr(data, "intents"):
        texts, labels = list(data.texts), list(data.intents)
    elif isinstance(data, pd.DataFrame):
        texts, labels = data["text"].astype(str).tolist(), data["intent"].astype(str).tolist()
    else:
        raise TypeError(
            "data must be a Dataset, a DataFrame with text/intent columns, or texts with intents="
        )
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} intents")
    if not texts:
        raise ValueError("nothing to evaluate: no utterances")
    return texts, labels


def _sweep(model, proba: np.ndarray, labels: list[str]) -> pd.DataFrame:
    classes = np.asarray(model.classes_, dtype=object)
    top = proba.argmax(axis=1)
    conf = proba[np.arange(len(top)), top]
    pred = classes[top]
    t = np.asarray(labels, dtype=object)
    rows = []
    for th in np.round(np.linspace(0, 1, 51), 2):
        p = np.where(conf < th, OOS, pred)
        m = summary_metrics(t, p)
        rows.append(
            {
                "threshold": float(th),
                "in_scope_accuracy": m["in_scope_accuracy"],
                "oos_recall": m["oos_recall"],
                "oos_precision": m["oos_precision"],
                "accuracy": m["accuracy"],
            }
        )
    return pd.DataFrame(rows)


def _progress(it, enabled: bool, desc: str, total: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total)


def evaluate(
    model,
    data,
    intents=None,
    *,
    cv: int = 0,
    sweep: bool = True,
    learning_curve: bool = False,
    train=None,
    progress: bool = False,
    name: str = "",
):
    """Evaluate a fitted intent ``model`` on held-out ``data``.

    ``cv`` > 1 cross-validates a clone on ``train`` (or on ``data``); ``learning_curve``
    trains clones on growing fractions of ``train`` and scores them on ``data``."""
    from .report import EvaluationReport

    texts, labels = as_texts_intents(data, intents)
    pred = [str(p) for p in model.predict(texts)]
    proba = model.predict_proba(texts) if hasattr(model, "predict_proba") else None
    summary = summary_metrics(labels, pred)
    cm = confusion(labels, pred)
    conf = proba.max(axis=1) if proba is not None else np.full(len(texts), np.nan)
    wrong = [i for i, (t, p) in enumerate(zip(labels, pred, strict=True)) if t != p]
    errors = pd.DataFrame(
        {
            "text": [texts[i] for i in wrong],
            "expected": [labels[i] for i in wrong],
            "predicted": [pred[i] for i in wrong],
            "confidence": [float(conf[i]) for i in wrong],
        },
        columns=["text", "expected", "predicted", "confidence"],
    )
    errors = errors.sort_values("confidence", ascending=False).reset_index(drop=True)
    report = EvaluationReport(
        summary=summary,
        per_intent=per_intent(labels, pred),
        confusion=cm,
        confused_pairs=confused_pairs(cm),
        errors=errors,
        threshold=getattr(model, "threshold_", None),
        meta={"name": name},
    )
    if sweep and proba is not None:
        report.threshold_sweep = _sweep(model, proba, labels)
    if cv and cv > 1:
        tx, ty = as_texts_intents(train) if train is not None else (texts, labels)
        skf = StratifiedKFold(n_splits=cv, shuffle=True, random_state=0)
        rows = []
        for k, (tr, te) in enumerate(
            _progress(skf.split(tx, ty), progress, "cross-validation", cv)
        ):
            m = clone(model).fit([tx[i] for i in tr], [ty[i] for i in tr])
            p = m.predict([tx[i] for i in te])
            rows.append({"fold": k + 1, **summary_metrics([ty[i] for i in te], list(p))})
        report.cross_validation = pd.DataFrame(rows)
    if learning_curve:
        if train is None:
            raise ValueError("learning_curve=True needs train= (the data to grow the model on)")
        tx, ty = as_texts_intents(train)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(tx))
        n_labels = len(set(ty))
        rows = []
        fracs = [0.1, 0.25, 0.5, 0.75, 1.0]
        for f in _progress(fracs, progress, "learning curve", len(fracs)):
            n = max(int(len(tx) * f), 2 * n_labels)
            idx = order[:n]
            sub_y = [ty[i] for i in idx]
            if len(set(sub_y)) < 2:
                continue
            m = clone(model).fit([tx[i] for i in idx], sub_y)
            rows.append({"train_size": n, **summary_metrics(labels, list(m.predict(texts)))})
        report.learning_curve = pd.DataFrame(rows)
    return report
