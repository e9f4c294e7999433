"""Matplotlib figures of an evaluation: confusion matrix, threshold sweep, learning curve."""

from __future__ import annotations

import functools

import pandas as pd

__all__ = ["plot_confusion", "plot_threshold_sweep", "plot_learning_curve", "cjk_font"]

_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Source Han Sans SC",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """An installed font that can draw Chinese labels, if any."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in _CJK_FONTS if n in names), None)


def _axes(ax, size=(6, 5)):
    if ax is None:
        import matplotlib.pyplot as plt

        _fig, ax = plt.subplots(figsize=size)
    return ax


def _font_kw() -> dict:
    """Text properties that draw Chinese when a CJK font is installed (per text, so the
    global matplotlib settings are left alone)."""
    font = cjk_font()
    if not font:
        return {}
    from matplotlib.font_manager import FontProperties

    return {"fontproperties": FontProperties(family=[font, "DejaVu Sans"])}


def _label(text: str) -> str:
    """Without a CJK font Chinese labels would be drawn as boxes, with a "Glyph missing"
    warning per character: keep them readable as ``\\uXXXX`` escapes instead."""
    text = str(text)
    if cjk_font() or text.isascii():
        return text
    return text.encode("unicode_escape").decode()


def plot_confusion(cm: pd.DataFrame, ax=None, normalize: bool = True):
    """Heatmap of the confusion matrix (rows: true intent, columns: predicted), labelled
    with the intent names; returns the figure."""
    import numpy as np

    n = len(cm)
    size = min(14.0, max(4.0, 0.35 * n + 2))  # 150 intents must not give a 50-inch figure
    ax = _axes(ax, (size + 1, size))
    m = cm.to_numpy().astype(float)
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fontsize = 7 if n <= 40 else max(2.0, 7 * 40 / n)
    kw = {"fontsize": fontsize, **_font_kw()}
    ax.set_xticks(range(len(cm.columns)), [_label(c) for c in cm.columns], rotation=90, **kw)
    ax.set_yticks(range(len(cm.index)), [_label(c) for c in cm.index], **kw)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.figure.tight_layout()
    return ax.figure


def plot_threshold_sweep(sweep: pd.DataFrame, threshold: float | None = None, ax=None):
    """Out-of-scope precision / recall / F1 and in-scope accuracy against the threshold, the
    model's threshold marked; returns the figure."""
    ax = _axes(ax, (6, 4))
    for col in ("in_scope_accuracy", "oos_recall", "oos_precision", "oos_f1"):
        if col in sweep:
            ax.plot(sweep["threshold"], sweep[col], label=col.replace("_", " "))
    if threshold is not None:
        ax.axvline(
            threshold, color="grey", linestyle="--", label=f"model threshold {threshold:.2f}"
        )
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title("out-of-scope threshold sweep")
    ax.legend(loc="lower left", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def plot_learning_curve(curve: pd.DataFrame, ax=None):
    """Accuracy, macro-F1 and in-scope accuracy against the number of training utterances."""
    ax = _axes(ax, (6, 4))
    for col in ("accuracy", "macro_f1", "in_scope_accuracy"):
        if col in curve:
            ax.plot(curve["train_size"], curve[col], marker="o", label=col.replace("_", " "))
    ax.set_xlabel("training utterances")
    ax.set_ylim(0, 1.02)
    ax.set_title("learning curve")
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
