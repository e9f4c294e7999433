"""Compare two evaluation reports intent by intent."""

from __future__ import annotations

import pandas as pd

__all__ = ["compare_reports"]


def compare_reports(a, b, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Per-intent F1 of reports ``a`` and ``b`` side by side with ``delta`` = b - a.

    Index ``intent`` (every intent of either report; one missing from a report counts as
    F1 0); columns ``f1_<name a>``, ``f1_<name b>``, ``delta``; largest drop first.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different labels, got {names!r}")
    for r in (a, b):
        if not isinstance(getattr(r, "per_intent", None), pd.DataFrame):
            raise TypeError(f"expected an EvaluationReport, got {type(r).__name__}")
    fa = a.per_intent["f1"].rename(f"f1_{names[0]}")
    fb = b.per_intent["f1"].rename(f"f1_{names[1]}")
    df = pd.concat([fa, fb], axis=1).fillna(0.0)
    df.index.name = "intent"
    df["delta"] = df.iloc[:, 1] - df.iloc[:, 0]
    return df.sort_values(["delta", "intent"], kind="stable")
