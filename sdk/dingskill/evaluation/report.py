"""``EvaluationReport``: what a model got right and wrong, as DataFrames, plots, HTML, JSON."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field

import pandas as pd

from . import plots

__all__ = ["EvaluationReport", "evaluate"]


def _frame_to_json(df: pd.DataFrame | None):
    if df is None:
        return None
    return json.loads(df.reset_index().to_json(orient="split", force_ascii=False))


def _frame_from_json(obj, index: str | None):
    if obj is None:
        return None
    df = pd.DataFrame(obj["data"], columns=obj["columns"])
    return df.set_index(index) if index and index in df.columns else df


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class EvaluationReport:
    summary: dict
    per_intent: pd.DataFrame
    confusion: pd.DataFrame
    confused_pairs: pd.DataFrame
    errors: pd.DataFrame
    threshold: float | None = None
    threshold_sweep: pd.DataFrame | None = None
    cross_validation: pd.DataFrame | None = None
    learning_curve: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    # -- plots ----------------------------------------------------------------------
    def plot_confusion(self, ax=None, normalize: bool = True):
        return plots.plot_confusion(self.confusion, ax=ax, normalize=normalize)

    def plot_threshold_sweep(self, ax=None):
        if self.threshold_sweep is None:
            raise ValueError("this report has no threshold sweep (evaluate(..., sweep=True))")
        return plots.plot_threshold_sweep(self.threshold_sweep, self.threshold, ax=ax)

    def plot_learning_curve(self, ax=None):
        if self.learning_curve is None:
            raise ValueError(
                "this report has no learning curve (evaluate(..., learning_curve=True, train=...))"
            )
        return plots.plot_learning_curve(self.learning_curve, ax=ax)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        cm = self.confusion
        return {
            "summary": {k: _clean(v) for k, v in self.summary.items()},
            "threshold": self.threshold,
            "per_intent": _frame_to_json(self.per_intent),
            "confusion": {"labels": list(cm.index), "matrix": cm.to_numpy().tolist()},
            "confused_pairs": _frame_to_json(self.confused_pairs.set_index("true"))
            if len(self.confused_pairs)
            else None,
            "errors": _frame_to_json(self.errors.set_index("text")) if len(self.errors) else None,
            "threshold_sweep": _frame_to_json(self.threshold_sweep.set_index("threshold"))
            if self.threshold_sweep is not None
            else None,
            "cross_validation": _frame_to_json(self.cross_validation.set_index("fold"))
            if self.cross_validation is not None
            else None,
            "learning_curve": _frame_to_json(self.learning_curve.set_index("train_size"))
            if self.learning_curve is not None
            else None,
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EvaluationReport:
        d = json.loads(text)
        labels = d["confusion"]["labels"]
        cm = pd.DataFrame(
            d["confusion"]["matrix"],
            index=pd.Index(labels, name="true"),
            columns=pd.Index(labels, name="predicted"),
        )
        pairs = _frame_from_json(d.get("confused_pairs"), None)
        errors = _frame_from_json(d.get("errors"), None)
        return cls(
            summary={k: (float("nan") if v is None else v) for k, v in d["summary"].items()},
            per_intent=_frame_from_json(d["per_intent"], "intent"),
            confusion=cm,
            confused_pairs=pairs
            if pairs is not None
            else pd.DataFrame(columns=["true", "predicted", "count"]),
            errors=errors
            if errors is not None
            else pd.DataFrame(columns=["text", "expected", "predicted", "confidence"]),
            threshold=d.get("threshold"),
            threshold_sweep=_frame_from_json(d.get("threshold_sweep"), None),
            cross_validation=_frame_from_json(d.get("cross_validation"), None),
            learning_curve=_frame_from_json(d.get("learning_curve"), None),
            meta=d.get("meta", {}),
        )

    # -- display -------------------------------------------------------------------------
    def __repr__(self) -> str:
        s = self.summary
        return (
            "EvaluationReport("
            + ", ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()
            )
            + ")"
        )

    @staticmethod
    def _png(fig) -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'

    def _repr_html_(self) -> str:
        s = pd.DataFrame([{k: v for k, v in self.summary.items()}]).T.rename(columns={0: "value"})
        parts = [
            "<h4>Evaluation</h4>",
            s.to_html(float_format=lambda x: f"{x:.3f}"),
            "<h4>Weakest intents</h4>",
            self.per_intent.head(15).to_html(float_format=lambda x: f"{x:.3f}"),
            "<h4>Most confused pairs</h4>",
            self.confused_pairs.head(10).to_html(index=False),
            "<h4>Misclassified examples</h4>",
            self.errors.head(15).to_html(index=False),
        ]
        if self.cross_validation is not None:
            parts += [
                "<h4>Cross-validation</h4>",
                self.cross_validation.to_html(index=False, float_format=lambda x: f"{x:.3f}"),
            ]
        figs = [self.plot_confusion()]
        if self.threshold_sweep is not None:
            figs.append(self.plot_threshold_sweep())
        if self.learning_curve is not None:
            figs.append(self.plot_learning_curve())
        parts += [self._png(f) for f in figs]
        return "\n".join(parts)

    def to_html(self) -> str:
        """A stand-alone HTML page of the report."""
        title = html.escape(self.meta.get("name", "dingskill evaluation"))
        return f"<!doctype html><meta charset='utf-8'><title>{title}</title>{self._repr_html_()}"


from .evaluate import evaluate  # noqa: E402  (re-export: dingskill.evaluate)
