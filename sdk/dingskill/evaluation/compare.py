"""Compare two evaluation reports intent by intent."""

from __future__ import annotations

import pandas as pd

__all__ = ["compare_reports"]


def compare_reports(a, b, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Per-intent F1 of two reports side by side, with the difference (b - a)."""
    fa, fb = (
        a.per_intent["f1"].rename(f"f1_{names[0]}"),
        b.per_intent["f1"].rename(f"f1_{names[1]}"),
    )
    df = pd.concat([fa, fb], axis=1).fillna(0.0)
    df["delta"] = df.iloc[:, 1] - df.iloc[:, 0]
    return df.sort_values("delta")
