"""Notebook views: dataset summary, interactive confusion matrix, out-of-scope threshold
slider and a side-by-side comparison of two models."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import pandas as pd

__all__ = ["dataset_view", "confusion_view", "threshold_view", "compare_view"]


def _table(df: pd.DataFrame, n: int = 20) -> str:
    return df.head(n).to_html(float_format=lambda x: f"{x:.3f}", max_cols=12)


def dataset_view(ds, **limits) -> widgets.Widget:
    """Counts, lengths, languages and validation findings of a Dataset, as tabs."""
    s = ds.summary()
    report = ds.validate(**limits)
    tabs = widgets.Tab(
        children=[
            widgets.HTML(_table(s["intents"], 50)),
            widgets.HTML(_table(s["lengths"])),
            widgets.HTML(_table(s["languages"])),
            widgets.HTML(
                f"<b>{len(report.errors)} error(s), {len(report.warnings)} warning(s)</b>"
                + (report.findings.to_html() if len(report.findings) else "<p>clean</p>")
            ),
        ]
    )
    for i, title in enumerate(["intents", "lengths", "languages", "validation"]):
        tabs.set_title(i, title)
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(repr(ds))}</b>"), tabs])


def confusion_view(report, max_grid: int = 24) -> widgets.Widget:
    """Click a cell of the confusion matrix to list its misclassified examples."""
    cm = report.confusion
    errors = report.errors
    out = widgets.HTML()

    def show(true: str, pred: str) -> None:
        rows = errors[(errors["expected"] == true) & (errors["predicted"] == pred)]
        out.value = (
            f"<b>{html.escape(true)} → {html.escape(pred)}</b>: {len(rows)} example(s)"
            + rows.to_html(index=False)
        )

    labels = list(cm.index)
    if len(labels) <= max_grid:
        m = cm.to_numpy()
        top = max(int(m.max()), 1)
        cells = [widgets.Label("")] + [
            widgets.HTML(
                f"<div style='writing-mode:vertical-rl;font-size:10px'>{html.escape(p)}</div>"
            )
            for p in labels
        ]
        for i, t in enumerate(labels):
            cells.append(widgets.HTML(f"<span style='font-size:10px'>{html.escape(t)}</span>"))
            for j, p in enumerate(labels):
                v = int(m[i, j])
                b = widgets.Button(
                    description=str(v) if v else "",
                    layout=widgets.Layout(width="34px", height="24px"),
                    tooltip=f"{t} → {p}: {v}",
                )
                shade = int(255 - 180 * v / top)
                b.style.button_color = (
                    f"rgb({shade},{shade},255)"
                    if i == j
                    else (f"rgb(255,{shade},{shade})" if v else "#fafafa")
                )
                b.on_click(lambda _, t=t, p=p: show(t, p))
                cells.append(b)
        grid = widgets.GridBox(
            cells, layout=widgets.Layout(grid_template_columns=f"140px repeat({len(labels)}, 36px)")
        )
        picker = grid
    else:
        pairs = report.confused_pairs
        picker = widgets.Select(
            options=[
                (f"{r.true} → {r.predicted} ({r.count})", (r.true, r.predicted))
                for r in pairs.itertuples()
            ],
            rows=12,
        )
        picker.observe(lambda c: show(*c["new"]) if c["new"] else None, names="value")
    if len(report.confused_pairs):
        first = report.confused_pairs.iloc[0]
        show(first["true"], first["predicted"])
    return widgets.VBox([picker, out])


def threshold_view(model, texts, intents) -> widgets.Widget:
    """A slider over the out-of-scope threshold with the precision / recall trade-off."""
    import matplotlib.pyplot as plt

    proba = model.predict_proba(list(texts))
    classes = np.asarray(model.classes_, dtype=object)
    conf, pred = proba.max(axis=1), classes[proba.argmax(axis=1)]
    truth = np.asarray(list(intents), dtype=object)

    def at(th: float) -> dict:
        p = np.where(conf < th, "oos", pred)
        ins, oos_pred = truth != "oos", p == "oos"
        return {
            "threshold": th,
            "in_scope_accuracy": float((p[ins] == truth[ins]).mean())
            if ins.any()
            else float("nan"),
            "oos_recall": float(oos_pred[~ins].mean()) if (~ins).any() else float("nan"),
            "oos_precision": float((truth[oos_pred] == "oos").mean())
            if oos_pred.any()
            else float("nan"),
        }

    grid = pd.DataFrame([at(t) for t in np.linspace(0, 1, 51)])
    slider = widgets.FloatSlider(
        value=float(model.threshold_ or 0.5),
        min=0,
        max=1,
        step=0.01,
        description="threshold",
        continuous_update=True,
        readout_format=".2f",
    )
    readout = widgets.HTML()
    plot = widgets.Output()

    def update(_=None) -> None:
        r = at(slider.value)
        readout.value = (
            f"in-scope accuracy <b>{r['in_scope_accuracy']:.3f}</b> · out-of-scope recall "
            f"<b>{r['oos_recall']:.3f}</b> · precision <b>{r['oos_precision']:.3f}</b>"
        )
        with plot:
            plot.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3))
            for col in ("in_scope_accuracy", "oos_recall", "oos_precision"):
                ax.plot(grid["threshold"], grid[col], label=col.replace("_", " "))
            ax.axvline(slider.value, color="black", linestyle="--")
            ax.set_xlabel("threshold")
            ax.legend(fontsize=8, loc="lower left")
            from IPython.display import display

            display(fig)
            plt.close(fig)

    slider.observe(update, names="value")
    update()
    view = widgets.VBox([slider, readout, plot])
    view.at = at  # type: ignore[attr-defined]  # for tests and scripts
    view.slider = slider  # type: ignore[attr-defined]
    view.readout = readout  # type: ignore[attr-defined]
    return view


def compare_view(report_a, report_b, names=("A", "B")) -> widgets.Widget:
    """Two evaluations side by side: summaries and per-intent F1 differences."""
    from ..evaluation import compare_reports

    summary = pd.DataFrame({names[0]: report_a.summary, names[1]: report_b.summary})
    diff = compare_reports(report_a, report_b, names=names)
    return widgets.HBox(
        [
            widgets.HTML("<b>summary</b>" + _table(summary)),
            widgets.HTML("<b>per-intent F1</b>" + _table(diff, 40)),
        ]
    )
