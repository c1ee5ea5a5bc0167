"""The report's figures, drawn with matplotlib (curves and confusion matrices by scikit-learn's
display classes) and returned as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` rather than ``pyplot``: no global figure
state, no GUI backend to pick, and nothing to close, so evaluation can run in a server or a
notebook without side effects.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

DPI = 110  # sharp on a phone, small enough that the self-contained report stays light


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def confusion_matrix_figure(cm: Sequence[Sequence[int]], classes: Sequence[str]) -> Figure:
    """Counts (left) and row-normalised rates, i.e. per-class recall on the diagonal (right)."""
    counts = np.asarray(cm)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax_counts, ax_norm = fig.subplots(1, 2)
    ConfusionMatrixDisplay(counts, display_labels=list(classes)).plot(
        ax=ax_counts, colorbar=False, values_format="d", cmap="Blues", xticks_rotation=30)
    ax_counts.set_title("Counts")
    ConfusionMatrixDisplay(norm, display_labels=list(classes)).plot(
        ax=ax_norm, colorbar=False, values_format=".2f", cmap="Blues", xticks_rotation=30,
        im_kw={"vmin": 0.0, "vmax": 1.0})
    ax_norm.set_title("Row-normalised (recall on the diagonal)")
    return fig


def _one_vs_rest_axes(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], display,
                      title: str, xlabel: str, ylabel: str) -> Figure:
    fig = Figure(figsize=(5.6, 4.8), layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(classes):
        positive = labels == k
        if positive.any() and not positive.all():
            display.from_predictions(positive, probs[:, k], name=name, ax=ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if display is RocCurveDisplay else "lower left", fontsize=8)
    return fig


def roc_figure(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Figure:
    fig = _one_vs_rest_axes(labels, probs, classes, RocCurveDisplay,
                            "ROC, one class vs the rest", "False positive rate",
                            "True positive rate")
    fig.axes[0].plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="_chance")
    return fig


def pr_figure(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Figure:
    return _one_vs_rest_axes(labels, probs, classes, PrecisionRecallDisplay,
                             "Precision-recall, one class vs the rest", "Recall", "Precision")


def reliability_figure(before: dict, after: dict, ece_before: float, ece_after: float,
                       temperature: float) -> Figure:
    """Accuracy against confidence per bin, with and without the stored temperature.

    ``before``/``after`` are :func:`braintumor.evaluation.calibration.reliability_bins`
    outputs; the lower panel shows how many images fall in each bin (after scaling).
    """
    fig = Figure(figsize=(5.6, 5.6), layout="constrained")
    ax, ax_n = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for bins, label, style in (
        (before, f"T = 1 (ECE {ece_before:.3f})", dict(color="tab:red", marker="o")),
        (after, f"T = {temperature:.2f} (ECE {ece_after:.3f})", dict(color="tab:blue",
                                                                      marker="s")),
    ):
        pts = [(c, a) for c, a in zip(bins["confidence"], bins["accuracy"], strict=True)
               if c is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, lw=1.5, ms=4, label=label, **style)
    ax.set_ylabel("Accuracy")
    ax.set_title("Reliability diagram (top-label)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    edges = np.asarray(after["edges"])
    ax_n.bar(edges[:-1], after["count"], width=np.diff(edges), align="edge", color="tab:blue",
             alpha=0.6, edgecolor="white")
    ax_n.set_xlabel("Confidence (probability of the predicted class)")
    ax_n.set_ylabel("Images")
    return fig


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Columns of a training ``metrics.csv`` as (epoch, value) series, blanks skipped.

    Tolerates Lightning's CSVLogger layout, where each row fills only the columns logged at
    that step, by keeping a row's value only where the cell is a number.
    """
    series: dict[str, list[tuple[float, float]]] = {}
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return series
    x_key = "epoch" if "epoch" in rows[0] else ("step" if "step" in rows[0] else None)
    for i, row in enumerate(rows):
        try:
            x = float(row[x_key]) if x_key else float(i)
        except (TypeError, ValueError):
            continue
        for key, cell in row.items():
            if key in (None, x_key, "step", "epoch"):
                continue
            try:
                v = float(cell)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                series.setdefault(key, []).append((x, v))
    return series


def training_curves_figure(series: dict[str, list[tuple[float, float]]]) -> Figure | None:
    """Losses (left) and validation/training scores (right) per epoch; None if nothing to draw."""
    losses = {k: v for k, v in series.items() if "loss" in k.lower()}
    scores = {k: v for k, v in series.items()
              if any(t in k.lower() for t in ("acc", "f1", "auc", "ece"))}
    if not losses and not scores:
        return None
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_score = fig.subplots(1, 2)
    for ax, group, title in ((ax_loss, losses, "Loss"), (ax_score, scores, "Scores")):
        for name, pts in sorted(group.items()):
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="." if len(xs) < 60 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8)
    return fig
