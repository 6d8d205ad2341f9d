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


def save_pretraining_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss (left) and accuracy (right) of a pretraining run, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_curves(history, ["train_mlm_loss", "eval_mlm_loss", "train_nsp_loss", "eval_nsp_loss"], left, "loss")
    plot_curves(history, ["train_mlm_accuracy", "eval_mlm_accuracy", "train_nsp_accuracy", "eval_nsp_accuracy"],
                right, "accuracy")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
