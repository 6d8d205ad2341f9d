"""Figures shared by the chapters and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(history: Sequence[dict[str, Any]], keys: Sequence[str], ax=None, title: str | None = None,
                log_y: bool = False):
    """One line per metric key against the optimizer step; keys missing from the log are skipped."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        points = [(r["step"], r[key]) for r in history if key in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key.replace("_", " "))
    ax.set_xlabel("optimizer step")
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def new_figure(figsize: tuple[float, float] | None = None):
    """A figure for writing to a file, outside pyplot.

    It is drawn by the Agg renderer without touching pyplot's backend or its list of open figures,
    so saving a PNG from a notebook neither switches off inline plots nor shows the figure twice.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_pretraining_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss (left) and accuracy (right) of a pretraining run, written as a PNG."""
    fig = new_figure((11, 3.8))
    left, right = fig.subplots(1, 2)
    plot_curves(history, ["train_mlm_loss", "eval_mlm_loss", "train_nsp_loss", "eval_nsp_loss"], left, "loss")
    plot_curves(history, ["train_mlm_accuracy", "eval_mlm_accuracy", "train_nsp_accuracy", "eval_nsp_accuracy"],
                right, "accuracy")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------- classification figures

def plot_confusion_matrix(matrix, label_names: Sequence[str], ax=None, normalize: bool = False,
                          title: str | None = None, cmap: str = "Blues"):
    """Heat map of a confusion matrix (rows true, columns predicted) with the counts written in.

    normalize=True colours by the share of each true class (rows sum to 1) and writes the share
    above the count.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)
    k = counts.shape[0]
    if ax is None:
        size = min(12.0, 2.5 + 0.45 * k)
        _, ax = plt.subplots(figsize=(size + 1, size))
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = counts / np.where(row_sums == 0, 1, row_sums)
    shown = shares if normalize else counts
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1 if normalize else max(1, counts.max()))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                       label="share of the true class" if normalize else "examples")
    ax.set_xticks(range(k), [str(n) for n in label_names], rotation=45 if k > 4 else 0,
                  ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), [str(n) for n in label_names])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if k <= 25:
        threshold = (1 if normalize else max(1, counts.max())) / 2
        fontsize = 10 if k <= 8 else 7 if k <= 15 else 5
        for i in range(k):
            for j in range(k):
                text = f"{shares[i, j]:.2f}\n({counts[i, j]:,})" if normalize else f"{counts[i, j]:,}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                        color="white" if shown[i, j] > threshold else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    return ax


def plot_reliability_diagram(calibration: dict[str, Any], ax=None, title: str | None = None):
    """Accuracy per confidence bin against the diagonal of perfect calibration, with bin counts.

    `calibration` is `bertlab.metrics.calibration(...)` (or `classification_metrics(...)["calibration"]`).
    Blue bars: accuracy of each non-empty bin (its count written in); red band: the gap to the bin's
    mean confidence. Bars below the diagonal mean over-confidence.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    bins = calibration["bins"]
    width = bins[0]["upper"] - bins[0]["lower"]
    total = sum(b["count"] for b in bins) or 1
    first = True
    for b in bins:
        if not b["count"]:
            continue
        ax.bar(b["lower"], b["accuracy"], width=width, align="edge", color="tab:blue", edgecolor="black",
               linewidth=0.5, label="accuracy" if first else None)
        low, high = sorted((b["accuracy"], b["confidence"]))
        ax.bar(b["lower"], high - low, bottom=low, width=width, align="edge", color="tab:red", alpha=0.25,
               edgecolor="tab:red", linewidth=0.8, label="gap to mean confidence" if first else None)
        inside = b["accuracy"] > 0.12  # write the count inside the bar when it is tall enough
        ax.text(b["lower"] + width / 2, b["accuracy"] / 2 if inside else b["accuracy"] + 0.03, f"{b['count']:,}",
                ha="center", va="center", fontsize=6, rotation=90, color="white" if inside else "black")
        first = False
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (largest probability)")
    ax.set_ylabel("accuracy")
    ece = calibration.get("ece")
    ax.set_title(title or (f"reliability diagram (ECE {ece:.3f}, {total:,} examples)" if ece is not None
                           else "reliability diagram"))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_per_class_f1(metrics: dict[str, Any], ax=None, title: str | None = None, max_classes: int = 40):
    """Horizontal bars of each class's F1 (support in the label), with the macro-F1 as a line."""
    import matplotlib.pyplot as plt

    rows = list(metrics["per_class"].items())[:max_classes]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 1.0 + 0.3 * len(rows)))
    names = [f"{name} ({row['support']:,})" for name, row in rows]
    values = [row["f1"] for _, row in rows]
    ax.barh(range(len(rows)), values, color="tab:green")
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.axvline(metrics["macro_f1"], color="black", linestyle="--")
    for i, v in enumerate(values):
        ax.text(min(v + 0.01, 0.92), i, f"{v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"F1 (support in brackets); dashed line: macro-F1 {metrics['macro_f1']:.3f}")
    ax.set_title(title or "F1 per class")
    return ax


def _save_figure(draw, path: str | Path, figsize: tuple[float, float] | None = None) -> Path:
    """Draw on a fresh figure and write it as a PNG."""
    fig = new_figure(figsize)
    draw(fig.subplots())
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def save_confusion_matrix(matrix, label_names: Sequence[str], path: str | Path, normalize: bool = False,
                          title: str | None = None) -> Path:
    k = len(label_names)
    size = min(12.0, 2.5 + 0.45 * k)
    return _save_figure(lambda ax: plot_confusion_matrix(matrix, label_names, ax, normalize, title), path,
                        (size + 1.2, size))


def save_reliability_diagram(calibration: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    return _save_figure(lambda ax: plot_reliability_diagram(calibration, ax, title), path, (5, 5))


def save_per_class_f1(metrics: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    n = min(len(metrics["per_class"]), 40)
    return _save_figure(lambda ax: plot_per_class_f1(metrics, ax, title), path, (6, 1.6 + 0.3 * n))
