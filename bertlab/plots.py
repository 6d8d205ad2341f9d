"""Figures shared by the chapters and the command line: curves and classification figures drawn from
data, and conceptual diagrams (the diagram_* functions) drawn from nothing but code."""

from __future__ import annotations

import functools
import io
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


LABEL_BUDGET_STYLE = {  # model -> (colour, line style): each pretrained model beside its random-init twin
    "tfidf": ("#555555", ":"), "tiny-random": ("#1f77b4", "--"), "tiny-pretrained": ("#1f77b4", "-"),
    "minilm-random": ("#d62728", "--"), "minilm-pretrained": ("#d62728", "-"),
}


def plot_label_budget(points: Sequence[dict[str, Any]], ax=None, title: str | None = None):
    """Test accuracy against the number of labelled examples (log scale), one line per model, each
    point its mean over seeds with the interval as an error bar. `points`: dicts with model,
    n_labels, mean and ci ([low, high]), as `tools/label_budget.py` summarises its records."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    models = list(dict.fromkeys(p["model"] for p in points))
    for model in sorted(models, key=lambda m: list(LABEL_BUDGET_STYLE).index(m) if m in LABEL_BUDGET_STYLE else 99):
        rows = sorted((p for p in points if p["model"] == model), key=lambda p: p["n_labels"])
        xs = [p["n_labels"] for p in rows]
        ys = [p["mean"] for p in rows]
        err = [[y - p["ci"][0] for y, p in zip(ys, rows)], [p["ci"][1] - y for y, p in zip(ys, rows)]]
        color, style = LABEL_BUDGET_STYLE.get(model, (None, "-"))
        ax.errorbar(xs, ys, yerr=err, color=color, ls=style, marker="o", markersize=4, capsize=3, label=model)
    ax.set_xscale("log")
    sizes = sorted({p["n_labels"] for p in points})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel("test accuracy")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
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


# --------------------------------------------------------------------------- conceptual diagrams
#
# Pictures of ideas rather than of data: boxes and arrows in one palette (PALETTE: one colour per
# kind of part, the same in every diagram). Each diagram_* function takes only keyword arguments and
# returns a Figure drawn by Agg outside pyplot, as new_figure does: leave it as a notebook cell's
# last value to show it, or call fig.savefig. The axes fill the figure and one data unit is one
# inch, so a box is sized to the text it holds (a line of 10-point text is about 0.14 units tall).
# Letters follow the book's notation: L layers, H hidden size, A heads, d_k = H/A, T tokens, and a
# sequence is a matrix with one row per token.

PALETTE: dict[str, tuple[str, str]] = {  # kind of part: (face colour, edge colour)
    "token": ("#f3f3f3", "#7a7a7a"),        # text, tokens, data
    "embedding": ("#d5e6f7", "#2f6ea8"),    # embeddings and hidden vectors
    "attention": ("#fde3c8", "#cf7419"),    # attention, and the encoder as a whole
    "feedforward": ("#d8f0d8", "#3b8a3b"),  # the feed-forward sublayer, fine-tuning
    "norm": ("#fff2ad", "#a38900"),         # LayerNorm
    "dropout": ("#e9e9e9", "#8c8c8c"),      # dropout, softmax and other steps without a matrix
    "head": ("#eadcf6", "#7a4aa8"),         # pooler, task heads, labels
    "mask": ("#fbd5d5", "#c0392b"),         # masked or chosen tokens: what the loss looks at
}
HEAD_COLORS = ("#2a9d8f", "#e76f51", "#d4a017", "#577590")  # one colour per attention head (or piece)
_INK, _ARROW, _MUTED = "#222222", "#4d4d4d", "#8a8a8a"


@functools.cache
def _diagram_class():
    """Figure, plus a PNG view for Jupyter: a figure made outside pyplot shows itself as a picture even
    where the inline backend has not been started yet (its formatters come with pyplot's first figure)."""
    from matplotlib.figure import Figure

    class Diagram(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100)
            return buffer.getvalue()

    return Diagram


def _canvas(width: float, height: float, title: str):
    """A figure whose single axes fills it, in inches, axis off, with the title at the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _diagram_class()(figsize=(width, height))
    FigureCanvasAgg(fig)  # drawn by Agg, outside pyplot, like new_figure
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    _text(ax, width / 2, height - 0.32, title, size=14, weight="bold")
    return fig, ax


def _text(ax, x, y, text, *, size=10, ha="center", va="center", color=_INK, weight="normal", math=True,
          **kwargs):
    """Text in the diagrams' font; math=False shows '$' literally (for titles that readers pass in)."""
    return ax.text(x, y, text, fontsize=size, ha=ha, va=va, color=color, fontweight=weight, parse_math=math,
                   **kwargs)


def _box(ax, xy, size, text="", kind="token", *, fontsize=10, lw=1.3, ls="-", face=None, edge=None, math=True,
         zorder=2):
    """A rounded box of `size` (w, h) centred on `xy`, coloured by its kind, with `text` centred in it."""
    from matplotlib.patches import FancyBboxPatch

    (x, y), (w, h) = xy, size
    face_default, edge_default = PALETTE[kind]
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={min(0.1, h / 3)}",
                           facecolor=face or face_default, edgecolor=edge or edge_default, linewidth=lw,
                           linestyle=ls, zorder=zorder)
    ax.add_patch(patch)
    if text:
        _text(ax, x, y, text, size=fontsize, math=math, zorder=zorder + 1)
    return patch


def _arrow(ax, start, end, *, color=_ARROW, lw=1.3, ls="-", rad=0.0, style="-|>", head=12):
    """An arrow from `start` to `end` (bent into an arc when rad is not 0; style "-" draws a plain line)."""
    from matplotlib.patches import FancyArrowPatch

    patch = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=head, color=color, linewidth=lw,
                            linestyle=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, zorder=1)
    ax.add_patch(patch)
    return patch


def _route(ax, points, *, color=_ARROW, lw=1.3):
    """An arrow along a path of straight segments through `points`, its head at the last point."""
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    patch = FancyArrowPatch(path=MplPath(points), arrowstyle="-|>", mutation_scale=12, color=color, linewidth=lw,
                            zorder=1)
    ax.add_patch(patch)
    return patch


def _rule(ax, xs, ys, *, color="#cccccc", lw=1.0, ls="-"):
    """A thin line without an arrow head: a divider between panels, or a faint guide."""
    return ax.plot(xs, ys, color=color, lw=lw, ls=ls)[0]


def _notes(ax, x, notes):
    """Paragraphs of (top y, text, colour[, size, weight]) hung from their top, left-aligned at x."""
    for y, text, color, *style in notes:
        size, weight = style[0] if style else 10, style[1] if len(style) > 1 else "normal"
        _text(ax, x, y, text, size=size, weight=weight, ha="left", va="top", color=color)


def _down(ax, x, top, bottom, **kwargs):
    """A short vertical arrow between two stacked boxes (top and bottom are the y of their edges)."""
    return _arrow(ax, (x, top), (x, bottom), **kwargs)


def _row(ax, labels, y, xs, size, kinds="token", *, fontsize=10, edges=None, lws=None):
    """One box per label at the given x positions (a row of tokens or of vectors)."""
    kinds = [kinds] * len(labels) if isinstance(kinds, str) else kinds
    return [_box(ax, (x, y), size, label, kind, fontsize=fontsize, edge=(edges or {}).get(i),
                 lw=(lws or {}).get(i, 1.3)) for i, (label, x, kind) in enumerate(zip(labels, xs, kinds))]


def _math_name(token: str) -> str:
    """A token as upright mathtext, so it can be a subscript: '##ing' -> '\\#\\#\\mathrm{ing}'.

    Runs of letters, digits and brackets are set upright; '#' is escaped; any other character
    (which mathtext could read as a command) is left out.
    """
    import re

    parts = re.findall(r"#|[\w\[\]().,'-]+", token)
    return "".join(r"\#" if part == "#" else r"\mathrm{" + part + "}" for part in parts) or r"\mathrm{?}"


def _tint(color: str, alpha: float = 0.3):
    """A light version of a colour, for the face of a box whose edge has the full colour."""
    from matplotlib.colors import to_rgb

    return tuple(1 - alpha * (1 - c) for c in to_rgb(color))


def diagram_attention(*, tokens: Sequence[str] = ("the", "cat", "sat", "on", "the", "mat"), query: int = 2,
                      weights: Sequence[float] = (0.05, 0.40, 0.10, 0.05, 0.05, 0.35)):
    """Attention as a soft lookup: the Q/K/V computation (top) and one query row against all keys (bottom).

    `weights` are the illustrative softmax weights of the query row (they should sum to 1).
    """
    fig, ax = _canvas(11, 7.7, "Attention: a soft lookup in which every key gets a weight")
    # --- top: the whole computation, all T rows at once
    _text(ax, 0.25, 6.95, "1. All T tokens at once (one row per token)", size=11, ha="left", weight="bold")
    _box(ax, (0.95, 5.55), (1.35, 1.55), "$X$\n$T \\times H$\ntoken rows", "embedding")
    ys = {"Q": 6.25, "K": 5.55, "V": 4.85}
    for name, y in ys.items():
        _box(ax, (3.35, y), (2.05, 0.5), f"${name} = XW^{name}$   ($T \\times d_k$)", "attention")
        _arrow(ax, (1.63, 5.55), (2.32, y))
    _box(ax, (5.95, 5.9), (2.0, 0.95), "scores\n$S = QK^{\\top} / \\sqrt{d_k}$\n$T \\times T$", "attention")
    _arrow(ax, (4.38, ys["Q"]), (4.95, 6.05))
    _arrow(ax, (4.38, ys["K"]), (4.95, 5.75))
    _box(ax, (8.15, 5.9), (1.95, 0.95), "softmax of each row\n$P$: each row sums to 1\n$T \\times T$", "dropout")
    _arrow(ax, (6.95, 5.9), (7.17, 5.9))
    _box(ax, (10.2, 5.7), (1.1, 1.2), "output\n$PV$\n$T \\times d_k$", "embedding")
    _arrow(ax, (9.13, 5.9), (9.65, 5.9))
    _route(ax, [(4.38, ys["V"]), (10.2, ys["V"]), (10.2, 5.1)])
    _text(ax, 7.1, ys["V"] - 0.2, "values $V$: weighted by the rows of $P$", size=9, color=_MUTED)
    _rule(ax, [0.25, 10.75], [4.3, 4.3])

    # --- bottom left: one query row against every key
    _text(ax, 0.25, 3.95, f"2. One query row (token {query}) against all T keys", size=11, ha="left",
          weight="bold")
    ys = [3.3 - 0.53 * j for j in range(len(tokens))]
    mid = (ys[0] + ys[-1]) / 2
    _box(ax, (0.95, mid), (1.3, 1.05), f"query $q_{{{query}}}$\nrow {query} of $Q$\n“{tokens[query]}”", "attention")
    for x, header in ((3.0, "keys"), (4.45, f"$w_j$ = softmax of $q_{{{query}}} \\cdot k_j / \\sqrt{{d_k}}$"),
                      (5.6, "values")):
        _text(ax, x, 3.66, header, size=9, color=_MUTED)
    out = (7.05, mid)
    for j, (token, y, w) in enumerate(zip(tokens, ys, weights)):
        _arrow(ax, (1.6, mid), (2.5, y), style="-", lw=0.6 + 9 * w, color=HEAD_COLORS[0])
        _box(ax, (3.0, y), (1.0, 0.4), f"$k_{{{j}}}$  {token}", "attention")
        ax.add_patch(_bar(3.65, y, 1.6 * w))
        _text(ax, 3.72 + 1.6 * w, y, f"{w:.2f}", size=9, ha="left")
        _rule(ax, [4.1 + 1.6 * w, 5.25], [y, y], color="#c8c8c8", lw=0.8, ls=":")
        _box(ax, (5.6, y), (0.62, 0.4), f"$v_{{{j}}}$", "embedding")
        _arrow(ax, (5.91, y), (out[0] - 0.55, out[1]), style="-", lw=0.6 + 9 * w, color=HEAD_COLORS[0])
    _text(ax, 4.55, 0.3, f"the weights sum to {sum(weights):.2f}", size=9, color=_MUTED)
    _box(ax, out, (1.1, 1.05), f"output\nrow {query}\n$\\sum_j w_j v_j$", "embedding")

    # --- bottom right: a dict, for contrast
    _rule(ax, [7.85, 7.85], [0.2, 4.05])
    _text(ax, 8.05, 3.95, "A Python dict: a hard lookup", size=11, ha="left", weight="bold")
    keys = list(dict.fromkeys(tokens))[:4]
    hit = keys[1]
    ys = [3.3 - 0.53 * j for j in range(len(keys))]
    _box(ax, (8.5, (ys[0] + ys[-1]) / 2), (0.8, 0.75), f"key\n“{hit}”", "token")
    for j, (key, y) in enumerate(zip(keys, ys)):
        match = key == hit
        _arrow(ax, (8.9, (ys[0] + ys[-1]) / 2), (9.45, y), style="-", lw=3 if match else 0.8,
               color=HEAD_COLORS[1] if match else "#c8c8c8", ls="-" if match else ":")
        _box(ax, (9.85, y), (0.8, 0.4), f"“{key}”", "token", lw=2.2 if match else 1.0,
             edge=HEAD_COLORS[1] if match else None)
        _text(ax, 10.4, y, "1" if match else "0", size=10, ha="left", weight="bold" if match else "normal")
    _text(ax, 9.35, 0.75, f"d[“{hit}”]: exactly one key matches\n(weight 1), every other gets 0;\n"
          "attention mixes all values", size=9, color=_MUTED)
    return fig


def _bar(x, y, length, height=0.26, color=HEAD_COLORS[0]):
    """A horizontal bar starting at (x, y - height/2): a weight drawn as a length."""
    from matplotlib.patches import Rectangle

    return Rectangle((x, y - height / 2), length, height, facecolor=color, edgecolor="none", alpha=0.8)


def _striped(ax, x, y, width, height, n, *, labels=True):
    """A matrix drawn as n column blocks side by side, block i in head colour i (its number inside)."""
    from matplotlib.patches import Rectangle

    step = width / n
    for i in range(n):
        color = HEAD_COLORS[i % len(HEAD_COLORS)]
        ax.add_patch(Rectangle((x - width / 2 + i * step, y - height / 2), step, height, facecolor=_tint(color, 0.45),
                               edgecolor=color, linewidth=1.3, zorder=2))
        if labels:
            _text(ax, x - width / 2 + (i + 0.5) * step, y, str(i), size=9, zorder=3)
    return [x - width / 2 + (i + 0.5) * step for i in range(n)]


def diagram_multi_head():
    """Multi-head attention: Q, K, V split into A blocks of width d_k = H/A, one attention per head,
    the heads' outputs concatenated back to width H and multiplied by W^O (drawn with A = 4)."""
    heads = 4
    fig, ax = _canvas(11, 6.6, "Multi-head attention: A heads of width $d_k = H/A$, side by side")
    for name, y in (("Q", 4.85), ("K", 3.35), ("V", 1.85)):
        _text(ax, 1.3, y + 0.68, f"${name} = XW^{name}$   ($T \\times H$)", size=10)
        _striped(ax, 1.3, y, 1.6, 0.8, heads)
    _text(ax, 1.3, 1.05, "A blocks of width $d_k$\n(here A = 4)", size=9, color=_MUTED)
    _arrow(ax, (2.3, 3.35), (3.05, 3.35), style="simple,head_width=1.2,head_length=0.8,tail_width=0.5", head=18,
           color="#bdbdbd")
    _text(ax, 2.68, 3.78, "split", size=10)
    ys = [5.0 - 1.05 * i for i in range(heads)]
    _text(ax, 4.15, 5.78, "head $i$ takes block $i$\nof $Q$, $K$, $V$ ($T \\times d_k$)", size=9, color=_MUTED)
    _text(ax, 6.55, 5.78, "attention in each head,\nseparately", size=9, color=_MUTED)
    concat_x = _striped(ax, 8.45, 3.2, 1.6, 0.9, heads)
    _text(ax, 8.6, 4.3, "concatenate\n($T \\times H$)", size=10)
    for i, y in enumerate(ys):
        color = HEAD_COLORS[i]
        for x, name in zip((3.55, 4.15, 4.75), "QKV"):
            _box(ax, (x, y), (0.52, 0.48), f"${name}_{{{i}}}$", face=_tint(color, 0.45), edge=color)
        _box(ax, (6.55, y), (1.8, 0.52), f"attention, head {i}", face=_tint(color, 0.45), edge=color)
        _arrow(ax, (5.02, y), (5.64, y), color=color)
        above = i < heads / 2
        _arrow(ax, (7.46, y), (concat_x[i], 3.67 if above else 2.73), color=color, rad=-0.25 if above else 0.25)
    _box(ax, (10.2, 3.2), (1.0, 0.9), "$\\cdot\\, W^O$\n$H \\times H$", "attention")
    _arrow(ax, (9.26, 3.2), (9.69, 3.2))
    _box(ax, (10.2, 1.75), (1.0, 0.7), "output\n$T \\times H$", "embedding")
    _down(ax, 10.2, 2.74, 2.11)
    _text(ax, 5.5, 0.85, "each head: $\\mathrm{head}_i = \\mathrm{softmax}(Q_i K_i^{\\top} / \\sqrt{d_k})\\, V_i$,"
          "  an output of $T \\times d_k$", size=10)
    _text(ax, 5.5, 0.35, "BERT-base: H = 768, A = 12, so $d_k$ = 64. The A narrow heads cost about as much as "
          "one head of width H.", size=9, color=_MUTED)
    return fig


def diagram_input_representation(*, tokens: Sequence[str] = ("[CLS]", "my", "dog", "is", "cute", "[SEP]", "he",
                                                              "likes", "play", "##ing", "[SEP]")):
    """BERT's input: token + segment + position embeddings summed per token, then LayerNorm and dropout.

    The content of Figure 2 of Devlin et al. (2019), drawn this book's way. Sentence A runs up to and
    including the first [SEP]; everything after it is sentence B.
    """
    n = len(tokens)
    step = min(0.8, 8.7 / n)
    fig, ax = _canvas(max(11.0, 2.3 + n * step), 7.6, "BERT's input: token + segment + position embeddings")
    xs = [2.15 + step * i for i in range(n)]
    size = (step - 0.08, 0.46)
    first_sep = tokens.index("[SEP]") if "[SEP]" in tokens else n - 1
    segments = ["A" if i <= first_sep else "B" for i in range(n)]
    rows = [
        (6.25, "input tokens", list(tokens), "token"),
        (5.3, "token embeddings", [f"$E_{{{_math_name(t)}}}$" for t in tokens], "embedding"),
        (4.25, "segment embeddings", [f"$E_{s}$" for s in segments], "embedding"),
        (3.2, "position embeddings", [f"$E_{{{i}}}$" for i in range(n)], "embedding"),
    ]
    for y, label, labels, kind in rows:
        _text(ax, 1.7, y, label, size=10, ha="right")
        _row(ax, labels, y, xs, size, kind, fontsize=10 if step >= 0.7 else 9)
    for i, x in enumerate(xs):
        _down(ax, x, 6.02, 5.53, color=_MUTED, lw=1.0)  # each token looks up its row of the token table
        for y in (4.78, 3.73):
            _text(ax, x, y, "+", size=13, weight="bold", color=_MUTED)
        _down(ax, x, 2.97, 2.42, lw=1.0)
    span = (xs[0] - size[0] / 2, xs[-1] + size[0] / 2)
    for segment, colour in (("A", HEAD_COLORS[0]), ("B", HEAD_COLORS[3])):
        members = [x for x, s in zip(xs, segments) if s == segment]
        if members:
            _rule(ax, [members[0] - size[0] / 2, members[-1] + size[0] / 2], [6.72, 6.72], color=colour, lw=2.5)
            _text(ax, (members[0] + members[-1]) / 2, 6.72, f" sentence {segment} ", size=9, color=colour,
                  backgroundcolor="white")
    centre, width = (span[0] + span[1]) / 2, span[1] - span[0]
    _box(ax, (centre, 2.15), (width, 0.5), "sum: one vector of size H per token", "embedding")
    _box(ax, (centre, 1.4), (width, 0.42), "LayerNorm (of each token's vector)", "norm")
    _box(ax, (centre, 0.75), (width, 0.42), "dropout", "dropout")
    _down(ax, centre, 1.9, 1.61)
    _down(ax, centre, 1.19, 0.96)
    _down(ax, centre, 0.54, 0.38)
    _text(ax, 1.7, 1.08, "as in BERT's\ncode and bertlab", size=9, ha="right", color=_MUTED)
    _text(ax, centre, 0.22, "to the encoder: $X$, a $T \\times H$ matrix, one row per token (positions from 0)",
          size=10)
    return fig


def diagram_encoder_layer():
    """One post-LN encoder layer as in BERT, with its residual connections; the encoder stacks L of them."""
    fig, ax = _canvas(10.8, 9.2, "One encoder layer (post-LN, as in BERT)")
    x, w = 3.5, 3.3
    steps = [  # (y, height, text, kind)
        (8.15, 0.46, "input $X$  ($T \\times H$)", "embedding"),
        (7.25, 0.62, "multi-head self-attention\n(A heads, then $W^O$)", "attention"),
        (6.4, 0.38, "dropout", "dropout"),
        (5.72, 0.0, "+", "add"),
        (5.05, 0.42, "LayerNorm", "norm"),
        (3.7, 1.7, "", "feedforward"),
        (2.4, 0.38, "dropout", "dropout"),
        (1.72, 0.0, "+", "add"),
        (1.05, 0.42, "LayerNorm", "norm"),
    ]
    from matplotlib.patches import Circle

    edges = []
    for y, h, text, kind in steps:
        if kind == "add":
            ax.add_patch(Circle((x, y), 0.22, facecolor="white", edgecolor=_ARROW, linewidth=1.4, zorder=2))
            _text(ax, x, y + 0.01, "+", size=15, weight="bold", zorder=3)
            h = 0.44
        else:
            _box(ax, (x, y), (w, h), text, kind, fontsize=11 if kind in ("attention", "norm") else 10)
        edges.append((y + h / 2, y - h / 2))
    for (_, bottom), (top, _) in zip(edges, edges[1:]):
        _down(ax, x, bottom, top)
    ffn = steps[5][0]
    _text(ax, x, ffn + 0.63, "feed-forward (the same for every token)", size=10, weight="bold")
    for dy, text, kind in ((0.25, "linear  $H \\to 4H$", "feedforward"), (-0.15, "GELU", "dropout"),
                           (-0.55, "linear  $4H \\to H$", "feedforward")):
        _box(ax, (x, ffn + dy), (2.1, 0.3), text, kind, fontsize=10, lw=1.0)
    # residual connections: around each sublayer, from its input to the add
    for branch, add in ((7.74, 5.72), (4.7, 1.72)):
        _route(ax, [(x, branch), (x - w / 2 - 0.4, branch), (x - w / 2 - 0.4, add), (x - 0.23, add)])
        _text(ax, x - w / 2 - 0.5, (branch + add) / 2, "residual", size=9, color=_MUTED, rotation=90)
    # the stack
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2 - 0.75, 0.7), w + 1.5, 7.13, boxstyle="round,pad=0,rounding_size=0.15",
                                facecolor="none", edgecolor=_MUTED, linestyle="--", linewidth=1.2))
    _text(ax, x + w / 2 + 1.2, 4.3, "× L", size=16, weight="bold")
    _text(ax, x + w / 2 + 1.2, 3.95, "layers", size=10)
    _down(ax, x, 0.84, 0.48)
    _text(ax, x, 0.3, "output ($T \\times H$): the input of the next layer", size=10)
    _notes(ax, 7.0, [
        (7.9, "post-LN (BERT): LayerNorm comes after each\nresidual add:", _INK),
        (7.15, "$X' = \\mathrm{LayerNorm}(X + \\mathrm{Dropout}(\\mathrm{MHA}(X)))$", _INK),
        (6.6, "$Y = \\mathrm{LayerNorm}(X' + \\mathrm{Dropout}(\\mathrm{FFN}(X')))$", _INK),
        (5.7, "pre-LN (many later models) would put\nLayerNorm before each sublayer instead:\n"
              "$X + \\mathrm{MHA}(\\mathrm{LayerNorm}(X))$", _MUTED),
        (4.2, "The feed-forward acts on each token's\nrow alone: width H, then 4H, then H.", _INK),
        (3.25, "Every sublayer keeps the shape $T \\times H$,\nso layers stack and residuals add.", _INK),
        (2.25, "BERT-base: L = 12, H = 768, A = 12,\n4H = 3072.", _MUTED),
    ])
    return fig


def _fan(ax, source, targets, **kwargs):
    """Arrows from one point to several."""
    return [_arrow(ax, source, target, **kwargs) for target in targets]


def diagram_pretraining(*, tokens: Sequence[str] = ("[CLS]", "my", "dog", "is", "cute", "[SEP]", "he", "likes",
                                                     "play", "##ing", "[SEP]"),
                        chosen: Sequence[int] = (4, 8), random_token: str = "car",
                        random_sentence: str = "stocks fell on Monday"):
    """BERT's two pretraining tasks on one example: masked LM (15% chosen; 80/10/10) and NSP (50/50).

    `chosen` are the positions the MLM picked in this example (the first becomes [MASK], the others
    stay unchanged here); `random_token` and `random_sentence` illustrate the random replacements.
    """
    n = len(tokens)
    fig, ax = _canvas(11, 9.3, "Pretraining: masked language model (MLM) and next sentence prediction (NSP)")
    step = min(0.82, 8.6 / n)
    xs = [2.0 + step * i for i in range(n)]
    size = (step - 0.08, 0.46)
    chosen = [i for i in chosen if 0 <= i < n]
    shown = [("[MASK]" if chosen and i == chosen[0] else t) for i, t in enumerate(tokens)]
    red = {i: PALETTE["mask"][1] for i in chosen}
    thick = {i: 2.4 for i in chosen}
    for y, label in ((8.25, "text"), (7.35, "model input"), (6.45, "encoder"), (5.5, "heads"), (4.6, "targets")):
        _text(ax, 1.5, y, label, size=10, ha="right")
    _row(ax, tokens, 8.25, xs, size, edges=red, lws=thick, fontsize=10 if step >= 0.75 else 9)
    _row(ax, shown, 7.35, xs, size, ["mask" if i in chosen else "token" for i in range(n)],
         fontsize=10 if step >= 0.75 else 9)
    for i, x in enumerate(xs):
        _down(ax, x, 8.02, 7.58, color=PALETTE["mask"][1] if i in chosen else _MUTED, lw=1.0)
    span = (xs[0] - size[0] / 2, xs[-1] + size[0] / 2)
    _box(ax, ((span[0] + span[1]) / 2, 6.45), (span[1] - span[0], 0.55), "BERT encoder: embeddings + L layers",
         "attention", fontsize=11)
    head_size = (step - 0.08, 0.56)
    for x in xs:
        _down(ax, x, 7.12, 6.73, lw=1.0)
    for i in [0, *chosen]:
        x = xs[i]
        _down(ax, x, 6.17, 5.5 + head_size[1] / 2)
        _box(ax, (x, 5.5), head_size, "pooler\n+ NSP" if i == 0 else "MLM\nhead", "head", fontsize=9)
        _down(ax, x, 5.5 - head_size[1] / 2, 4.83)
        _box(ax, (x, 4.6), size, "IsNext" if i == 0 else tokens[i], "head" if i == 0 else "mask",
             fontsize=10 if step >= 0.75 else 9)
    _text(ax, (span[0] + span[1]) / 2, 4.05, "MLM: predict the original token at the chosen positions only "
          "(a softmax over the vocabulary).   NSP: from the final [CLS] vector.", size=9, color=_MUTED)
    _rule(ax, [0.25, 10.75], [3.75, 3.75])
    _rule(ax, [5.3, 5.3], [0.2, 3.6])

    # --- MLM: what happens to a chosen token
    word = tokens[chosen[0]] if chosen else "cute"
    _text(ax, 0.25, 3.45, "MLM: choose 15% of the positions", size=11, ha="left", weight="bold")
    _text(ax, 0.85, 2.62, "a chosen token", size=9, color=_MUTED)
    _box(ax, (0.85, 2.1), (0.9, 0.46), word, "mask", lw=2.4)
    outcomes = ((2.95, "[MASK]", "mask", "80%", "the [MASK] token"), (2.1, random_token, "token", "10%",
                "a random token"), (1.25, word, "token", "10%", "unchanged"))
    _fan(ax, (1.31, 2.1), [(2.4, y) for y, *_ in outcomes])
    for y, text, kind, share, note in outcomes:
        _box(ax, (2.85, y), (0.9, 0.46), text, kind)
        _text(ax, 3.42, y, share, size=11, ha="left", weight="bold")
        _text(ax, 3.95, y, note, size=10, ha="left")
    _text(ax, 2.65, 0.5, f"The model must predict the original token (“{word}”),\nwhatever the input shows there. "
          "[CLS] and [SEP]\nare never chosen.", size=10)

    # --- NSP: is sentence B the next one?
    first_sep = tokens.index("[SEP]") if "[SEP]" in tokens else n
    sentence_a = " ".join(t for t in tokens[1:first_sep]).replace(" ##", "")
    sentence_b = " ".join(t for t in tokens[first_sep + 1:] if t != "[SEP]").replace(" ##", "")
    _text(ax, 5.5, 3.45, "NSP: is B the sentence after A?", size=11, ha="left", weight="bold")
    _box(ax, (6.42, 2.05), (1.5, 0.5), f"A: {sentence_a}", "token", fontsize=9)
    pairs = ((2.85, f"B: {sentence_b}", "50%: the real next sentence", "IsNext"),
             (1.25, f"B: {random_sentence}", "50%: a random sentence", "NotNext"))
    _fan(ax, (7.17, 2.05), [(7.5, y) for y, *_ in pairs])
    for y, text, note, label in pairs:
        _box(ax, (8.45, y), (1.9, 0.5), text, "token", fontsize=9)
        _text(ax, 8.45, y + 0.42, note, size=9, color=_MUTED)
        _arrow(ax, (9.4, y), (9.82, y))
        _box(ax, (10.3, y), (0.95, 0.46), label, "head")
    _text(ax, 8.1, 0.5, "predicted from the final [CLS] vector, through\nthe pooler (dense + tanh) and a linear "
          "layer", size=10)
    return fig


def diagram_classification_head(*, tokens: Sequence[str] = ("[CLS]", "the", "film", "was", "great", "[SEP]"),
                                labels: Sequence[str] = ("positive", "negative"),
                                probabilities: Sequence[float] = (0.93, 0.07)):
    """Fine-tuning for classification: the final [CLS] vector -> pooler -> dropout -> linear -> softmax.

    `probabilities` are illustrative, one per label.
    """
    n = len(tokens)
    fig, ax = _canvas(11, 8.7, "Fine-tuning for classification: a small head on the [CLS] vector")
    step = min(0.9, 4.8 / n)
    xs = [1.2 + step * i for i in range(n)]
    size = (step - 0.1, 0.46)
    _row(ax, tokens, 7.7, xs, size)
    span = (xs[0] - size[0] / 2, xs[-1] + size[0] / 2)
    _box(ax, ((span[0] + span[1]) / 2, 6.75), (span[1] - span[0], 0.6), "BERT encoder\n(embeddings + L layers)",
         "attention")
    vectors = ["$h_{\\mathrm{[CLS]}}$"] + [f"$h_{{{i}}}$" for i in range(1, n)]
    for box in _row(ax, vectors, 5.8, xs, size, "embedding", lws={0: 2.6})[1:]:
        box.set_alpha(0.45)  # the head does not read these
    for x in xs:
        _down(ax, x, 7.47, 7.05, lw=1.0)
        _down(ax, x, 6.45, 6.03, lw=1.0)
    sx, sw = 2.75, 2.9
    stack = [  # (y, height, text, kind, dashed: new weights)
        (4.7, 0.55, "pooler: dense $H \\to H$ + tanh", "head", False),
        (3.9, 0.4, "dropout", "dropout", False),
        (3.1, 0.55, "linear: $H \\to$ number of labels", "head", True),
        (2.3, 0.4, "softmax", "dropout", False),
    ]
    _route(ax, [(xs[0], 5.57), (xs[0], 5.25), (sx, 5.25), (sx, 4.7 + 0.275)])
    for (y, h, text, kind, new), following in zip(stack, [*stack[1:], (1.5, 0.0)]):
        _box(ax, (sx, y), (sw, h), text, kind, ls="--" if new else "-", lw=1.8 if new else 1.3)
        _down(ax, sx, y - h / 2, following[0] + following[1] / 2 + (0.22 if following[1] == 0 else 0))
    tags = ((4.7, "pretrained (with NSP), updated"), (3.1, "new: random start, updated"),
            (2.3, "loss: cross-entropy with the true label"))
    for y, tag in tags:
        _text(ax, sx + sw / 2 + 0.15, y, tag, size=9, ha="left", color=_MUTED)
    _text(ax, span[1] + 0.2, 6.75, "pretrained, updated", size=9, color=_MUTED, ha="left")
    _text(ax, xs[-1] + size[0] / 2 + 0.2, 5.8, f"final vectors ($T \\times H$):\nthe head reads only {vectors[0]}",
          size=9, ha="left", color=_MUTED)
    for k, (label, p) in enumerate(zip(labels, probabilities)):
        y = 1.45 - 0.42 * k
        _text(ax, sx - 0.55, y, label, size=10, ha="right")
        ax.add_patch(_bar(sx - 0.45, y, 2.4 * p, height=0.3, color=PALETTE["head"][1]))
        _text(ax, sx - 0.38 + 2.4 * p, y, f"{p:.2f}", size=10, ha="left")
    _text(ax, sx, 1.5 - 0.42 * len(labels), "probabilities: one per label, summing to 1", size=9, color=_MUTED)
    _notes(ax, 7.2, [
        (4.95, "Fine-tuning updates all the weights:", _INK, 11, "bold"),
        (4.6, "the embeddings, every encoder layer, the\npooler and the new linear layer; not only\nthe head.", _INK),
        (3.45, "Solid edge: weights from pretraining.\nDashed edge: new weights, random start.", _INK),
        (2.55, "The paper's search: batch size 16 or 32,\nlearning rate 5e-5, 3e-5 or 2e-5 (Adam),\n2 to 4 epochs.",
         _MUTED),
    ])
    return fig


def diagram_pretrain_finetune(*, tasks: Sequence[tuple[str, str]] = (("review sentiment", "positive"),
                                                                    ("news topic", "sports"),
                                                                    ("spam filter", "not spam"))):
    """Pretrain once on unlabelled text, then fine-tune copies of the same weights for several tasks.

    `tasks` are (task, an example prediction) pairs, one fine-tuning branch each.
    """
    fig, ax = _canvas(11, 6.6, "Pretrain once, fine-tune for each task")
    mid = 3.2
    _box(ax, (1.05, mid), (1.75, 1.5), "unlabelled text\n\nBooksCorpus +\nWikipedia\n(3.3 billion words)", "token")
    _arrow(ax, (1.93, mid), (2.27, mid))
    _box(ax, (3.2, mid), (1.85, 1.5), "pretraining\nMLM + NSP\n\nonce, expensive", "attention", fontsize=11)
    _text(ax, 3.2, mid - 1.05, "BERT-base: 4 days\non 16 TPU chips", size=9, color=_MUTED)
    _arrow(ax, (4.13, mid), (4.55, mid))
    for offset in (0.12, 0.06):  # a small stack of sheets: saved weights
        _box(ax, (5.25 + offset, mid + offset), (1.4, 1.1), "", "embedding", lw=1.0)
    _box(ax, (5.25, mid), (1.4, 1.1), "pretrained\nweights", "embedding", fontsize=11)
    _text(ax, 5.25, mid - 0.95, "the same weights,\ncopied for each task", size=9, color=_MUTED)
    count = len(tasks)
    ys = [mid + 1.8 * (count - 1) / 2 - 1.8 * i for i in range(count)] if count <= 3 else \
        [mid + 2.4 - 4.8 * i / (count - 1) for i in range(count)]
    height = min(0.95, 4.8 / max(count, 1) - 0.2)
    _fan(ax, (5.97, mid), [(6.33, y) for y in ys])
    for y, (task, prediction) in zip(ys, tasks):
        _box(ax, (7.25, y), (1.8, height), f"fine-tuning\n{task}\n+ a small labelled set", "feedforward",
             math=False, fontsize=10 if count <= 3 else 9)
        _arrow(ax, (8.16, y), (8.6, y))
        _box(ax, (9.15, y), (1.1, height), "classifier", "head")
        _arrow(ax, (9.71, y), (9.98, y))
        _box(ax, (10.42, y), (0.82, 0.46), f"“{prediction}”", "token", fontsize=9, math=False)
    _text(ax, 10.42, max(ys) + 0.6, "predictions", size=9, color=_MUTED)
    _text(ax, 5.5, 0.55, "Fine-tuning, once per task: a small labelled data set, a new head, all weights updated; "
          "cheap\n(the paper: at most an hour on one Cloud TPU, a few hours on a GPU).", size=10)
    return fig


BOOK_CHAPTERS: tuple[tuple[str, str, str], ...] = (  # (number, short title, part): the book's reading order
    ("0", "What BERT is for", "Start"),
    ("1", "Attention", "Foundations"),
    ("2", "Multi-head attention", "Foundations"),
    ("3", "Positional encoding", "Foundations"),
    ("4", "The BERT encoder", "Foundations"),
    ("5", "Tokenization (WordPiece)", "Foundations"),
    ("6", "Pretraining data (MLM, NSP)", "Pretraining and fine-tuning"),
    ("7", "Pretraining", "Pretraining and fine-tuning"),
    ("8", "Fine-tuning", "Pretraining and fine-tuning"),
    ("9", "GPUs and scaling", "Pretraining and fine-tuning"),
    ("10", "Evaluation", "Pretraining and fine-tuning"),
    ("11", "Chinese classification", "Pretraining and fine-tuning"),
    ("12", "Using your model", "Pretraining and fine-tuning"),
    ("A1", "Misconceptions", "Appendix"),
)


def diagram_chapter_map(chapters: Sequence[tuple[str, str, str]] | None = None):
    """The book's map: one column per part, its chapters stacked in reading order, arrows between them.

    `chapters` is a list of (number, short title, part) in reading order (default: BOOK_CHAPTERS);
    parts appear left to right in the order they first occur.
    """
    import textwrap
    from collections import Counter

    chapters = list(BOOK_CHAPTERS if chapters is None else chapters)
    parts = list(dict.fromkeys(part for _, _, part in chapters))
    rows = max(Counter(part for _, _, part in chapters).values(), default=1)
    col_w, gap, box_h, row_step = 2.3, 0.5, 0.64, 0.86
    width = max(6.0, 0.3 + len(parts) * (col_w + gap) - gap + 0.3)
    height = 1.75 + rows * row_step
    fig, ax = _canvas(width, height, "The book's map: chapters in reading order")
    kinds = ("token", "embedding", "feedforward", "head", "attention", "norm")
    where: list[tuple[float, float]] = []
    filled = {part: 0 for part in parts}
    top = height - 1.25
    for c, part in enumerate(parts):
        x = 0.3 + c * (col_w + gap) + col_w / 2
        _text(ax, x, height - 0.82, textwrap.fill(part, 26, break_on_hyphens=False), size=11, weight="bold", math=False,
              color=PALETTE[kinds[c % len(kinds)]][1])
    for number, title, part in chapters:
        c = parts.index(part)
        x = 0.3 + c * (col_w + gap) + col_w / 2
        y = top - box_h / 2 - filled[part] * row_step
        filled[part] += 1
        _box(ax, (x, y), (col_w, box_h), "", kinds[c % len(kinds)])
        _text(ax, x - col_w / 2 + 0.12, y, str(number), size=12, weight="bold", ha="left", math=False)
        title = textwrap.fill(str(title), 20, break_on_hyphens=False)
        _text(ax, x - col_w / 2 + 0.55, y, title, size=10, ha="left", math=False)
        where.append((x, y))
    for (x0, y0), (x1, y1) in zip(where, where[1:]):
        if x0 == x1 and y1 < y0:  # the next chapter of the same part: straight down
            _down(ax, x0, y0 - box_h / 2, y1 + box_h / 2)
        else:  # into another part: out of the right side, down or up the gap, into the left side
            right, left = x0 + col_w / 2, x1 - col_w / 2
            mid = right + gap / 2 if left > right else right + gap / 4
            _route(ax, [(right, y0), (mid, y0), (mid, y1), (left, y1)] if left > right else
                   [(right, y0), (mid, y0), (mid, y1), (x1 + col_w / 2, y1)])
    _text(ax, width / 2, 0.3, "Read down each column, then follow the arrow to the next part.", size=9,
          color=_MUTED)
    return fig


WORDPIECE_VOCAB: tuple[str, ...] = ("[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "p", "u", "play", "player", "un",
                                    "##a", "##e", "##s", "##ing", "##aff", "##able")


def _wordpiece_steps(word: str, vocab) -> list[tuple[int, str, int]] | None:
    """BERT's greedy longest-match-first split of one word: (start, piece, misses) per step, None for [UNK].

    `misses` counts the longer candidates tried before the piece matched.
    """
    steps, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                steps.append((start, piece, len(word) - end))
                start = end
                break
        else:
            return None
    return steps


def diagram_wordpiece(*, words: Sequence[str] = ("playing", "unaffable"), vocab: Sequence[str] = WORDPIECE_VOCAB):
    """WordPiece: each word split greedily, longest match first, into pieces of a small vocabulary.

    Each step shows what is left of the word, "##" marking a piece inside a word, and the longest
    prefix found in the vocabulary; a word with no match at some step becomes [UNK] as a whole.
    """
    vocab_set = set(vocab)
    splits = [(word, _wordpiece_steps(word, vocab_set)) for word in words]
    cell, rows = 0.4, sum(len(steps or [None]) + 2 for _, steps in splits)
    longest = max([len(w) for w in words] or [1])
    x0 = 1.35
    vocab_x = max(8.45, x0 + (longest + 1) * cell + 3.3)
    width = vocab_x + 2.5
    height = max(1.9 + 0.55 * rows, 1.9 + 0.36 * (len(vocab) + 1) / 2 + 0.7)
    fig, ax = _canvas(width, height, "WordPiece: longest match first, piece by piece")
    y, used = height - 1.0, set()
    for word, steps in splits:
        _text(ax, 0.3, y, f"“{word}”", size=12, weight="bold", ha="left", math=False)
        y -= 0.58
        for k, (start, piece, misses) in enumerate(steps or [(0, None, len(word))]):
            color = HEAD_COLORS[k % len(HEAD_COLORS)] if piece else PALETTE["mask"][1]
            _text(ax, 0.3, y, f"step {k + 1}", size=10, ha="left", color=_MUTED)
            letters = (["##"] if start else []) + list(word[start:])
            matched = len(piece) - (2 if start else 0) + (1 if start else 0) if piece else 0
            for i, letter in enumerate(letters):
                hit = i < matched
                _box(ax, (x0 + (i + 0.5) * cell, y), (cell - 0.05, 0.4), letter, "token", math=False,
                     face=_tint(color, 0.45) if hit else None, edge=color if hit else "#c8c8c8",
                     fontsize=9 if letter == "##" else 10)
            note = f"longest match: {piece}" if piece else "no prefix matches"
            tried = ("so the whole word becomes [UNK]" if not piece else "the whole rest is in the vocabulary"
                     if not misses else f"{misses} longer prefix{'es' if misses != 1 else ''} not in the vocabulary")
            _text(ax, x0 + (len(letters) + 0.3) * cell, y + 0.1, note, size=10, ha="left", math=False,
                  weight="bold", color=color)
            _text(ax, x0 + (len(letters) + 0.3) * cell, y - 0.13, tried, size=9, ha="left", math=False,
                  color=_MUTED)
            if piece:
                used.add(piece)
            y -= 0.55
        pieces = [piece for _, piece, _ in steps] if steps else ["[UNK]"]
        _text(ax, 0.3, y, "pieces", size=10, ha="left", weight="bold")
        x = x0
        for k, piece in enumerate(pieces):
            color = HEAD_COLORS[k % len(HEAD_COLORS)] if steps else PALETTE["mask"][1]
            w = 0.3 + 0.11 * len(piece)
            _box(ax, (x + w / 2, y), (w, 0.42), piece, face=_tint(color, 0.45), edge=color, math=False)
            x += w + 0.12
        used.update(["[UNK]"] if not steps else [])
        y -= 0.75
    # the vocabulary
    half = (len(vocab) + 1) // 2
    top = height - 1.0
    _box(ax, (vocab_x + 1.1, top - 0.36 * half / 2 - 0.15), (2.3, 0.36 * half + 0.75), "", "embedding", lw=1.0)
    _text(ax, vocab_x + 1.1, top + 0.05, "the vocabulary", size=10, weight="bold")
    for i, entry in enumerate(vocab):
        _text(ax, vocab_x + 0.15 + 1.1 * (i // half), top - 0.4 - 0.36 * (i % half), entry, size=10, ha="left",
              math=False, weight="bold" if entry in used else "normal", color=_INK if entry in used else _MUTED)
    _text(ax, vocab_x + 1.1, top - 0.36 * half - 0.65, "bold: used above", size=9, color=_MUTED)
    _text(ax, width / 2, 0.45, "At each step take the longest prefix of the rest that is in the vocabulary; a piece "
          "inside a word\nis written with ## in front. If no prefix matches at some step, the whole word becomes "
          "[UNK].", size=10, color=_MUTED, math=False)
    return fig
