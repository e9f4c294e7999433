"""Entity metrics: exact span + type precision / recall / F1 per type, micro and macro, a
partial-overlap figure, type confusions and the worst errors, as DataFrames.

Exact: a predicted entity counts when a gold entity has the same ``start``, ``end`` and type.
Partial: it counts when it overlaps a gold entity of the same type (each gold entity matched
once), the lenient figure of the SemEval-2013 / MUC family.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["EntityEvaluation", "entity_metrics"]

ERROR_COLUMNS = ["text", "kind", "expected", "predicted", "confidence"]


def _key(e) -> tuple[int, int, str]:
    if isinstance(e, dict):
        return int(e["start"]), int(e["end"]), str(e["entity"])
    return int(e.start), int(e.end), str(e.entity)


def _conf(e) -> float:
    c = e.get("confidence", 1.0) if isinstance(e, dict) else getattr(e, "confidence", 1.0)
    return float(c if c is not None else 1.0)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass
class EntityEvaluation:
    """``summary``: micro precision / recall / F1, macro F1 (mean over gold types), the
    partial-overlap micro F1, counts. ``per_type`` (index entity; precision, recall, f1,
    partial_f1, support; weakest first), ``confusions`` (expected, predicted, count: the same
    or overlapping span labelled another type), ``errors`` (text, kind = missed / spurious /
    wrong type / wrong span, expected, predicted, confidence; the surest mistakes first)."""

    summary: dict
    per_type: pd.DataFrame
    confusions: pd.DataFrame
    errors: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-compatible content (the 50 worst errors; NaN becomes null)."""
        errors = self.errors.head(50).astype(object)
        return {
            "summary": self.summary,
            "per_type": self.per_type.reset_index().to_dict("records"),
            "confusions": self.confusions.to_dict("records"),
            "errors": errors.where(errors.notna(), None).to_dict("records"),
        }

    @classmethod
    def from_dict(cls, d: dict) -> EntityEvaluation:
        """Inverse of :meth:`to_dict`."""
        per_type = pd.DataFrame(
            d["per_type"],
            columns=["entity", "precision", "recall", "f1", "partial_f1", "support", "predicted"],
        ).set_index("entity")
        return cls(
            dict(d["summary"]),
            per_type,
            pd.DataFrame(d["confusions"], columns=["expected", "predicted", "count"]),
            pd.DataFrame(d["errors"], columns=ERROR_COLUMNS),
        )

    def plot(self, ax=None):
        """Bar chart of exact and partial F1 per type (weakest first)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(self.per_type))))
        df = self.per_type.iloc[::-1]
        df[["f1", "partial_f1"]].plot.barh(ax=ax, width=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1")
        ax.set_title(
            f"entities: micro F1 {self.summary['micro_f1']:.3f}, "
            f"macro F1 {self.summary['macro_f1']:.3f}"
        )
        return ax

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"EntityEvaluation(micro_f1={s['micro_f1']:.4f}, macro_f1={s['macro_f1']:.4f}, "
            f"partial_micro_f1={s['partial_micro_f1']:.4f}, gold={s['gold']}, "
            f"predicted={s['predicted']})"
        )

    def _repr_html_(self) -> str:
        head = f"<b>{html.escape(repr(self))}</b>"
        return (
            head
            + self.per_type.round(3).to_html()
            + "<p>type confusions</p>"
            + self.confusions.head(10).to_html(index=False)
            + "<p>worst errors</p>"
            + self.errors.head(10).to_html(index=False)
        )


def entity_metrics(texts, gold, predicted) -> EntityEvaluation:
    """Score ``predicted`` entities against ``gold`` (per text, lists of ``Entity`` or dicts
    with start / end / entity)."""
    texts = list(texts)
    gold, predicted = list(gold), list(predicted)
    if not (len(texts) == len(gold) == len(predicted)):
        raise ValueError(
            f"{len(texts)} texts, {len(gold)} gold and {len(predicted)} predicted entity lists"
        )
    counts: dict[str, list[int]] = {}  # type -> [tp, fp, fn, partial tp, partial fp, partial fn]
    confusions: dict[tuple[str, str], int] = {}
    errors = []

    def c(t):
        return counts.setdefault(t, [0, 0, 0, 0, 0, 0])

    for text, g_row, p_row in zip(texts, gold, predicted, strict=True):
        g = {_key(e): e for e in g_row or []}
        p = {_key(e): e for e in p_row or []}
        for k in g:
            c(k[2])
        for k in p:
            c(k[2])
        for k in g.keys() & p.keys():
            c(k[2])[0] += 1
        for k in p.keys() - g.keys():
            c(k[2])[1] += 1
        for k in g.keys() - p.keys():
            c(k[2])[2] += 1
        # partial: overlap with the same type, each gold entity used once
        used: set = set()
        for k in sorted(p):
            hit = next(
                (
                    gk
                    for gk in sorted(g)
                    if gk not in used and gk[2] == k[2] and gk[0] < k[1] and k[0] < gk[1]
                ),
                None,
            )
            if hit is not None:
                used.add(hit)
                c(k[2])[3] += 1
            else:
                c(k[2])[4] += 1
        for gk in g.keys() - used:
            c(gk[2])[5] += 1
        # errors and confusions
        for k in sorted(p.keys() - g.keys()):
            over = [gk for gk in g if gk[0] < k[1] and k[0] < gk[1] and gk not in p]
            same_span = [gk for gk in over if gk[:2] == k[:2]]
            if same_span:
                kind = "wrong type"
                confusions[(same_span[0][2], k[2])] = confusions.get((same_span[0][2], k[2]), 0) + 1
            elif any(gk[2] == k[2] for gk in over):
                kind = "wrong span"
            elif over:
                kind = "wrong type"
                confusions[(over[0][2], k[2])] = confusions.get((over[0][2], k[2]), 0) + 1
            else:
                kind = "spurious"
            exp = "; ".join(f"{text[a:b]}/{t}" for a, b, t in sorted(over)) or ""
            errors.append((text, kind, exp, f"{text[k[0] : k[1]]}/{k[2]}", _conf(p[k])))
        for gk in sorted(g.keys() - p.keys()):
            if any(k[0] < gk[1] and gk[0] < k[1] for k in p if k not in g):
                continue  # reported above with the prediction that overlaps it
            errors.append((text, "missed", f"{text[gk[0] : gk[1]]}/{gk[2]}", "", float("nan")))
    rows = []
    for t, (tp, fp, fn, ptp, pfp, pfn) in sorted(counts.items()):
        p, r, f = _prf(tp, fp, fn)
        rows.append(
            {
                "entity": t,
                "precision": p,
                "recall": r,
                "f1": f,
                "partial_f1": _prf(ptp, pfp, pfn)[2],
                "support": tp + fn,
                "predicted": tp + fp,
            }
        )
    per_type = pd.DataFrame(
        rows, columns=["entity", "precision", "recall", "f1", "partial_f1", "support", "predicted"]
    ).set_index("entity")
    per_type = per_type.sort_values(["f1", "support"], ascending=[True, False], kind="stable")
    tot = [sum(v[i] for v in counts.values()) for i in range(6)]
    mp, mr, mf = _prf(*tot[:3])
    gold_types = per_type[per_type["support"] > 0]
    summary = {
        "micro_precision": mp,
        "micro_recall": mr,
        "micro_f1": mf,
        "macro_f1": float(gold_types["f1"].mean()) if len(gold_types) else 0.0,
        "partial_micro_f1": _prf(*tot[3:])[2],
        "gold": tot[0] + tot[2],
        "predicted": tot[0] + tot[1],
        "n": len(texts),
        "n_types": int(len(gold_types)),
    }
    conf = pd.DataFrame(
        [(a, b, n) for (a, b), n in confusions.items()],
        columns=["expected", "predicted", "count"],
    ).sort_values(["count", "expected"], ascending=[False, True], kind="stable")
    err = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    # the surest wrong predictions first, then the misses
    err = err.sort_values("confidence", ascending=False, na_position="last", kind="stable")
    return EntityEvaluation(
        summary, per_type, conf.reset_index(drop=True), err.reset_index(drop=True)
    )
