"""``evaluate(model, data)``: held-out metrics, threshold sweep, cross-validation, learning curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from .metrics import OOS, confused_pairs, confusion, per_intent, summary_metrics

__all__ = ["as_texts_intents", "evaluate", "forced_labels", "threshold_sweep"]

LEARNING_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def as_texts_intents(data, intents=None) -> tuple[list[str], list[str]]:
    """Texts and intents of a Dataset, a DataFrame with text/intent columns, a
    ``(texts, intents)`` pair, or ``data`` texts with ``intents`` given separately."""
    if intents is not None:
        texts, labels = list(data), list(intents)
    elif hasattr(data, "texts") and hasattr(data, "intents"):
        texts, labels = list(data.texts), list(data.intents)
    elif isinstance(data, pd.DataFrame):
        missing = [c for c in ("text", "intent") if c not in data.columns]
        if missing:
            raise ValueError(
                f"DataFrame is missing column(s) {missing}; columns: {list(data.columns)}"
            )
        texts, labels = data["text"].astype(str).tolist(), data["intent"].astype(str).tolist()
    elif isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], str):
        texts, labels = list(data[0]), list(data[1])
    else:
        raise TypeError(
            "data must be a Dataset, a DataFrame with text/intent columns, a (texts, intents) "
            f"pair, or texts with intents=...; got {type(data).__name__}"
        )
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} intents")
    if not texts:
        raise ValueError("nothing to evaluate: no utterances")
    for i, (t, lab) in enumerate(zip(texts, labels, strict=True)):
        if not isinstance(t, str):
            raise ValueError(f"text {i} must be str, got {type(t).__name__} ({t!r})")
        if not isinstance(lab, str):
            raise ValueError(f"intent {i} must be str, got {type(lab).__name__} ({lab!r})")
    return texts, labels


def forced_labels(model, texts: list[str]) -> list[str | None]:
    """The label ``predict`` gives each text whatever the threshold (None: the model's).

    Texts empty after normalisation are "oos"; a trigger rule (plain data in
    ``model.rules``, see :mod:`dingskill.nlu.rules`) wins over both, so the sweep agrees
    with ``predict`` at the model's own threshold."""
    from ..nlu import RuleSet, normalize_text

    rules = getattr(model, "rules", None)
    ruleset = RuleSet(rules) if rules else None
    out: list[str | None] = []
    for t in texts:
        label = None if normalize_text(t) else OOS
        m = ruleset.match(t) if ruleset is not None else None
        out.append(m.intent if m is not None else label)
    return out


def threshold_sweep(
    classes,
    proba: np.ndarray,
    labels: list[str],
    steps: int = 101,
    forced: list[str | None] | None = None,
) -> pd.DataFrame:
    """Out-of-scope precision / recall / F1, in-scope accuracy, accuracy and the share
    rejected for thresholds ``0 .. 1`` (``steps`` points).

    An utterance is "oos" when its top class is "oos" or its top probability is below the
    threshold, as in ``IntentClassifier.predict``; ``forced`` labels (from rules) are kept
    whatever the threshold."""
    classes = np.asarray(classes, dtype=object)
    top = proba.argmax(axis=1)
    conf = proba[np.arange(len(top)), top]
    pred = classes[top]
    t = np.asarray(labels, dtype=object)
    fixed = np.zeros(len(t), dtype=bool)
    if forced is not None:
        fixed = np.array([f is not None for f in forced], dtype=bool)
        pred = np.where(fixed, np.asarray(forced, dtype=object), pred)
    is_oos = t == OOS
    n_oos, n_in = int(is_oos.sum()), int((~is_oos).sum())
    nan = float("nan")
    rows = []
    for th in np.round(np.linspace(0.0, 1.0, steps), 4):
        p = np.where((conf < th) & ~fixed, OOS, pred)
        said_oos = p == OOS
        hit = int((said_oos & is_oos).sum())
        prec = hit / int(said_oos.sum()) if said_oos.any() else nan
        rec = hit / n_oos if n_oos else nan
        if np.isnan(prec) or np.isnan(rec):
            f1 = nan
        else:
            f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        right = p == t
        rows.append(
            {
                "threshold": float(th),
                "oos_precision": prec,
                "oos_recall": rec,
                "oos_f1": f1,
                "in_scope_accuracy": float(right[~is_oos].mean()) if n_in else nan,
                "accuracy": float(right.mean()),
                "rejected": float(said_oos.mean()),
            }
        )
    return pd.DataFrame(rows)


def _progress(it, enabled: bool, desc: str, total: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, unit="step")


def _stratified_subsample(labels: list[str], frac: float, seed: int = 0) -> np.ndarray:
    """Row indices of a ``frac`` share of each intent (at least 2 rows each where possible),
    so that every fraction of a learning curve sees every intent."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, dtype=object)
    keep = []
    for lab in sorted(set(labels)):
        rows = rng.permutation(np.flatnonzero(y == lab))
        n = min(len(rows), max(2, int(round(len(rows) * frac))))
        keep.append(rows[:n])
    return np.sort(np.concatenate(keep))


def _cross_validate(model, texts, labels, cv: int, progress: bool) -> pd.DataFrame:
    counts = pd.Series(labels).value_counts()
    if counts.min() < cv:
        few = counts[counts < cv]
        raise ValueError(
            f"{cv}-fold cross-validation needs at least {cv} utterances per intent (each fold "
            f"holds one out); too few: "
            + ", ".join(f"{k} ({v})" for k, v in few.items())
            + f". Use fewer folds (--cv {max(2, int(counts.min()))} or more data per intent)."
            if counts.min() >= 2
            else f"{cv}-fold cross-validation needs at least {cv} utterances per intent; "
            + ", ".join(f"{k} ({v})" for k, v in few.items())
            + " cannot be cross-validated: add examples of these intents."
        )
    skf = StratifiedKFold(n_splits=cv, shuffle=True, random_state=0)
    rows = []
    folds = skf.split(np.zeros(len(labels)), labels)
    for k, (tr, te) in enumerate(_progress(folds, progress, "cross-validation", cv)):
        m = clone(model).fit([texts[i] for i in tr], [labels[i] for i in tr])
        p = [str(x) for x in m.predict([texts[i] for i in te])]
        rows.append(
            {
                "fold": k + 1,
                "train_size": len(tr),
                **summary_metrics([labels[i] for i in te], p),
            }
        )
    return pd.DataFrame(rows)


def _learning_curve(model, tx, ty, texts, labels, progress: bool) -> pd.DataFrame:
    rows = []
    for f in _progress(LEARNING_FRACTIONS, progress, "learning curve", len(LEARNING_FRACTIONS)):
        idx = _stratified_subsample(ty, f)
        m = clone(model).fit([tx[i] for i in idx], [ty[i] for i in idx])
        pred = [str(x) for x in m.predict(texts)]
        rows.append({"fraction": f, "train_size": len(idx), **summary_metrics(labels, pred)})
    return pd.DataFrame(rows)


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
    entity_model=None,
    entities=None,
):
    """Evaluate a fitted intent ``model`` on held-out ``data`` -> :class:`EvaluationReport`.

    ``data``: a Dataset, a DataFrame with ``text``/``intent`` columns, a ``(texts, intents)``
    pair, or texts with ``intents=``. ``cv`` > 0 cross-validates (stratified k-fold, ``cv``
    folds) an unfitted clone of ``model`` on ``train`` (or on ``data``); ``sweep`` adds the
    out-of-scope threshold sweep from ``predict_proba``; ``learning_curve`` trains clones on
    growing stratified fractions of ``train`` and scores them on ``data``. ``progress`` shows
    tqdm bars for the long steps.

    ``entity_model``: a fitted :class:`~dingskill.nlu.entity_extractor.EntityExtractor`; it
    runs on the texts with the intents ``model`` predicted (as in the runtime), and its
    entities are scored against the data's annotations (or ``entities=``, per text a list)
    in ``report.entities`` (:class:`~dingskill.evaluation.entity_metrics.EntityEvaluation`).
    """
    from .report import EvaluationReport

    if not isinstance(cv, int) or cv < 0 or cv == 1:
        raise ValueError(f"cv must be 0 (off) or an integer >= 2, got {cv!r}")
    texts, labels = as_texts_intents(data, intents)
    pred = [str(p) for p in model.predict(texts)]
    proba = model.predict_proba(texts) if hasattr(model, "predict_proba") else None
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
    errors = errors.sort_values("confidence", ascending=False, kind="stable")
    report = EvaluationReport(
        summary=summary_metrics(labels, pred),
        per_intent=per_intent(labels, pred),
        confusion=cm,
        confused_pairs=confused_pairs(cm),
        errors=errors.reset_index(drop=True),
        threshold=getattr(model, "threshold_", None),
        meta={"name": name},
    )
    if entity_model is not None:
        from .entity_metrics import entity_metrics

        gold = entities if entities is not None else getattr(data, "entities", None)
        if gold is None:
            raise ValueError(
                "entity_model= needs annotated data: a Dataset with entity annotations or "
                "entities= (per text a list of {start, end, entity})"
            )
        found = entity_model.predict(texts, pred)
        report.entities = entity_metrics(texts, gold, found)
    if sweep and proba is not None:
        report.threshold_sweep = threshold_sweep(
            model.classes_, proba, labels, forced=forced_labels(model, texts)
        )
    if cv:
        tx, ty = as_texts_intents(train) if train is not None else (texts, labels)
        report.cross_validation = _cross_validate(model, tx, ty, cv, progress)
    if learning_curve:
        if train is None:
            raise ValueError("learning_curve=True needs train= (the data to grow the model on)")
        tx, ty = as_texts_intents(train)
        report.learning_curve = _learning_curve(model, tx, ty, texts, labels, progress)
    return report
