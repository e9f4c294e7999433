"""``EvaluationReport``: what a model got right and wrong, as DataFrames, plots, HTML, JSON."""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import math
from dataclasses import dataclass, field

import pandas as pd

from . import plots
from .entity_metrics import EntityEvaluation

__all__ = ["EvaluationReport", "evaluate"]


def _frame_to_json(df: pd.DataFrame | None):
    if df is None:
        return None
    return json.loads(df.reset_index().to_json(orient="split", force_ascii=False))


def _plain_to_json(df: pd.DataFrame | None):
    """A table whose index carries no meaning: its columns only, in order."""
    if df is None or len(df) == 0:
        return None
    return json.loads(df.to_json(orient="split", index=False, force_ascii=False))


def _frame_from_json(obj, index: str | None):
    if obj is None:
        return None
    df = pd.DataFrame(obj["data"], columns=obj["columns"])
    return df.set_index(index) if index and index in df.columns else df


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class EvaluationReport:
    """What a model got right and wrong on held-out data.

    ``summary``: accuracy, macro_f1, in_scope_accuracy, oos_recall, oos_precision, n,
    n_intents. ``per_intent`` (index intent; precision, recall, f1, support; weakest first),
    ``confusion`` (rows true, columns predicted), ``confused_pairs`` (true, predicted, count;
    most frequent first), ``errors`` (text, expected, predicted, confidence), and optionally
    ``threshold_sweep``, ``cross_validation`` and ``learning_curve``. Renders as HTML in
    Jupyter; ``to_json`` / ``from_json`` for scripts.
    """

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
    entities: EntityEvaluation | None = None  # evaluate(..., entity_model=...) on annotated data

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
        """JSON-compatible content (NaN becomes null)."""
        cm = self.confusion
        return {
            "summary": {k: _clean(v) for k, v in self.summary.items()},
            "threshold": self.threshold,
            "per_intent": _frame_to_json(self.per_intent),
            "confusion": {"labels": list(cm.index), "matrix": cm.to_numpy().tolist()},
            "confused_pairs": _plain_to_json(self.confused_pairs),
            "errors": _plain_to_json(self.errors),
            "threshold_sweep": _plain_to_json(self.threshold_sweep),
            "cross_validation": _plain_to_json(self.cross_validation),
            "learning_curve": _plain_to_json(self.learning_curve),
            "meta": self.meta,
            "entities": None if self.entities is None else self.entities.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (UTF-8 text, Chinese kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EvaluationReport:
        """Inverse of :meth:`to_json`."""
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
            entities=EntityEvaluation.from_dict(d["entities"]) if d.get("entities") else None,
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
        import warnings

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        with warnings.catch_warnings():  # no font for a glyph: one box, not a warning each
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
            fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        return f'<img alt="plot" src="data:image/png;base64,{data}"/>'

    def _summary_table(self) -> str:
        rows = []
        for k, v in self.summary.items():
            if isinstance(v, float):
                shown = "–" if math.isnan(v) else f"{v:.3f}"
            else:
                shown = str(v)
            rows.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(shown)}</td></tr>")
        if self.threshold is not None:
            rows.append(f"<tr><th>threshold</th><td>{self.threshold:.3f}</td></tr>")
        return "<table class='dingskill-summary'>" + "".join(rows) + "</table>"

    def _repr_html_(self) -> str:
        # every name and utterance in these tables is data: pandas escapes it (escape=True)
        fmt = {"float_format": lambda x: f"{x:.3f}", "escape": True}
        name = self.meta.get("name") or ""
        parts = [
            f"<h4>Evaluation {html.escape(str(name))}</h4>",
            self._summary_table(),
            "<h4>Per-intent precision / recall / F1 (weakest first)</h4>",
            self.per_intent.head(200).to_html(**fmt),
            "<h4>Most confused pairs</h4>",
            self.confused_pairs.head(10).to_html(index=False, escape=True)
            if len(self.confused_pairs)
            else "<p>none</p>",
            "<h4>Misclassified examples (most confident first)</h4>",
            self.errors.head(20).to_html(index=False, **fmt) if len(self.errors) else "<p>none</p>",
        ]
        if self.entities is not None:
            parts += ["<h4>Entities (exact span + type)</h4>", self.entities._repr_html_()]
        if self.cross_validation is not None:
            parts += [
                "<h4>Cross-validation</h4>",
                self.cross_validation.to_html(index=False, **fmt),
            ]
        if self.learning_curve is not None:
            parts += ["<h4>Learning curve</h4>", self.learning_curve.to_html(index=False, **fmt)]
        if importlib.util.find_spec("matplotlib") is None:  # the `plots` extra
            parts.append(
                "<p>plots need matplotlib: <code>pip install 'dingskill[plots]'</code></p>"
            )
        else:
            figs = [self.plot_confusion()]
            if self.threshold_sweep is not None:
                figs.append(self.plot_threshold_sweep())
            if self.learning_curve is not None:
                figs.append(self.plot_learning_curve())
            if self.entities is not None and len(self.entities.per_type):
                figs.append(self.entities.plot().figure)
            parts += [self._png(f) for f in figs]
        return "<div class='dingskill-evaluation'>" + "\n".join(parts) + "</div>"

    def to_html(self) -> str:
        """A stand-alone HTML page of the report."""
        title = html.escape(self.meta.get("name", "dingskill evaluation"))
        return f"<!doctype html><meta charset='utf-8'><title>{title}</title>{self._repr_html_()}"


from .evaluate import evaluate  # noqa: E402  (re-export: dingskill.evaluate)
