"""Classification metrics written out with numpy: counts, averages, intervals, calibration.

`classification_metrics(y_true, probs, label_names)` is the one entry point the CLI uses; it
returns a JSON-serialisable dict. The pieces it is built from are small functions of their own, so
that a chapter can show each one (the tests check them against scikit-learn, which this module
does not import).

Conventions (the ones scikit-learn uses by default):

- The predicted class is the arg-max of the probabilities (the first index on a tie).
- Confusion matrix: rows are true labels, columns predicted labels, in `label_names` order.
- A precision, recall or F1 whose denominator is zero is 0 (scikit-learn's `zero_division=0`).
  F1 = 2·TP / (2·TP + FP + FN), which is 0 when the class is never predicted.
- Macro and weighted averages run over the classes that occur in `y_true` or in the predictions,
  as scikit-learn does with `labels=None`; a class the model knows but that neither occurs nor is
  predicted is listed in the per-class report (all zeros) and left out of the averages. The
  weighted average weighs each class by its support (true count).
- ROC-AUC (two classes only) scores class 1 (`label_names[1]`) by its probability. It is the
  Mann-Whitney statistic: the chance that a random positive scores above a random negative, ties
  counted one half — equal to the trapezoidal area under the ROC curve scikit-learn computes.
- Intervals: the percentile bootstrap (Efron & Tibshirani, 1993, ch. 13). Draw `resamples`
  samples of N examples with replacement (numpy's PCG64 generator seeded with `seed`), recompute
  the metric on each, and report the 2.5th and 97.5th percentiles (numpy's linear interpolation)
  for a 95% interval. It measures the sampling noise of the evaluation set, not of training.
- Calibration: the expected calibration error of Guo et al. (2017), "On Calibration of Modern
  Neural Networks": confidence = the largest probability; M = 15 equal-width bins
  B_m = ((m-1)/M, m/M]; ECE = sum_m |B_m|/N · |acc(B_m) - conf(B_m)|, where acc is the share of
  correct predictions in the bin and conf its mean confidence. MCE is the largest bin gap.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

DEFAULT_BINS = 15


def _as_numpy(x, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(y_true, probs, num_labels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y = _as_numpy(y_true)
    p = _as_numpy(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be an (N, K) array, got shape {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"{y.shape[0] if y.ndim else 0} labels for {p.shape[0]} rows of probabilities")
    if p.shape[0] == 0:
        raise ValueError("no examples to evaluate")
    if num_labels is not None and p.shape[1] != num_labels:
        raise ValueError(f"probabilities have {p.shape[1]} columns for {num_labels} label names")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integer class indices")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}, found {y.min()}..{y.max()}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinity")
    return y, p


# --------------------------------------------------------------------------- counts and averages

def accuracy(y_true, y_pred) -> float:
    """Share of examples whose prediction equals the label."""
    y_true, y_pred = _as_numpy(y_true), _as_numpy(y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_labels: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    y_true = _as_numpy(y_true).astype(np.int64)
    y_pred = _as_numpy(y_pred).astype(np.int64)
    return np.bincount(y_true * num_labels + y_pred, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diag(cm)
    pred = cm.sum(axis=0)  # TP + FP
    true = cm.sum(axis=1)  # TP + FN, the support
    return {
        "precision": _divide(tp, pred),
        "recall": _divide(tp, true),
        "f1": _divide(2.0 * tp, true + pred),
        "support": true.astype(np.int64),
        "predicted": pred.astype(np.int64),
    }


def averaged_scores(cm: np.ndarray) -> dict[str, float]:
    """Macro and weighted precision, recall and F1 over the classes present in labels or predictions."""
    s = per_class_scores(cm)
    present = (s["support"] + s["predicted"]) > 0
    out = {}
    for name in ("precision", "recall", "f1"):
        values = s[name][present]
        out[f"macro_{name}"] = float(np.average(values))
        out[f"weighted_{name}"] = float(np.average(values, weights=s["support"][present]))
    return out


def macro_f1(cm: np.ndarray) -> float:
    return averaged_scores(cm)["macro_f1"]


def roc_auc(y_true, scores) -> float | None:
    """Area under the ROC curve for 0/1 labels and scores of class 1; None if one class is absent.

    Rank-based: (sum of the positives' ranks - P(P+1)/2) / (P·N), tied scores sharing their mean rank.
    """
    y = _as_numpy(y_true).astype(np.int64)
    s = _as_numpy(scores, np.float64)
    n_pos = int((y == 1).sum())
    n_neg = int(y.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts_group = np.r_[True, sorted_s[1:] != sorted_s[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + 1 + ends) / 2.0  # 1-based ranks start+1 .. end, averaged
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = mean_rank[group]
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------- bootstrap intervals

def bootstrap_intervals(y_true, y_pred, num_labels: int, resamples: int = 1000, seed: int = 0,
                        level: float = 0.95, chunk: int = 200) -> dict[str, list[float]]:
    """Percentile-bootstrap intervals for accuracy and macro-F1 (see the module notes)."""
    y_true = _as_numpy(y_true).astype(np.int64)
    y_pred = _as_numpy(y_pred).astype(np.int64)
    n = y_true.shape[0]
    k = num_labels
    codes = y_true * k + y_pred
    rng = np.random.Generator(np.random.PCG64(seed))
    accs = np.empty(resamples)
    f1s = np.empty(resamples)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        # one confusion matrix per resample, counted with a single bincount
        flat = (codes[idx] + (np.arange(b) * k * k)[:, None]).ravel()
        cms = np.bincount(flat, minlength=b * k * k).reshape(b, k, k)
        tp = np.diagonal(cms, axis1=1, axis2=2)  # (b, K)
        true = cms.sum(axis=2)
        pred = cms.sum(axis=1)
        accs[start:start + b] = tp.sum(axis=1) / n
        f1 = _divide(2.0 * tp, true + pred)
        present = (true + pred) > 0
        f1s[start:start + b] = (f1 * present).sum(axis=1) / present.sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    q = [tail, 100.0 - tail]
    return {
        "accuracy": [float(v) for v in np.percentile(accs, q)],
        "macro_f1": [float(v) for v in np.percentile(f1s, q)],
    }


# --------------------------------------------------------------------------- calibration

def calibration(y_true, probs, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """ECE and MCE (Guo et al., 2017) and the per-bin data of a reliability diagram.

    Each bin: lower, upper (the interval (lower, upper]), count, accuracy and mean confidence
    (None for an empty bin) and gap = |accuracy - confidence|.
    """
    y, p = _check(y_true, probs)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin m holds edges[m] < c <= edges[m+1]; a confidence of exactly 0 falls into the first bin
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    n = y.shape[0]
    bins, ece, mce = [], 0.0, 0.0
    for m in range(n_bins):
        inside = which == m
        count = int(inside.sum())
        acc = conf = gap = None
        if count:
            acc = float(correct[inside].mean())
            conf = float(confidence[inside].mean())
            gap = abs(acc - conf)
            ece += count / n * gap
            mce = max(mce, gap)
        bins.append({"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": count,
                     "accuracy": acc, "confidence": conf, "gap": gap})
    return {"n_bins": n_bins, "ece": float(ece), "mce": float(mce),
            "mean_confidence": float(confidence.mean()), "bins": bins}


def expected_calibration_error(y_true, probs, n_bins: int = DEFAULT_BINS) -> float:
    return calibration(y_true, probs, n_bins)["ece"]


# --------------------------------------------------------------------------- errors

def confident_errors(y_true, probs, label_names: Sequence[str], texts: Sequence[str] | None = None,
                     ids: Sequence[str] | None = None, pairs: Sequence[str | None] | None = None,
                     top_k: int | None = 10) -> list[dict[str, Any]]:
    """The wrong predictions, most confident first (ties in input order); all of them if top_k is None."""
    y, p = _check(y_true, probs, len(label_names))
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-conf[wrong], kind="mergesort")]
    if top_k is not None:
        wrong = wrong[:top_k]
    out = []
    for i in wrong:
        row: dict[str, Any] = {"index": int(i)}
        if ids is not None:
            row["id"] = ids[i]
        if texts is not None:
            row["text"] = texts[i]
        if pairs is not None and pairs[i] is not None:
            row["text_pair"] = pairs[i]
        row.update({"true": label_names[y[i]], "predicted": label_names[pred[i]],
                    "confidence": float(conf[i]), "true_probability": float(p[i, y[i]])})
        out.append(row)
    return out


# --------------------------------------------------------------------------- everything at once

def validation_metrics(y_true, logits) -> dict[str, float]:
    """accuracy, mean cross-entropy loss and macro-F1 of (N, K) logits against class indices: what
    fine-tuning tracks on the validation split as it trains (the full report is classification_metrics)."""
    y = _as_numpy(y_true).astype(np.int64).reshape(-1)
    z = _as_numpy(logits, np.float64)
    if y.shape[0] == 0:
        return {"accuracy": 0.0, "loss": 0.0, "macro_f1": 0.0}
    pred = z.argmax(axis=1)
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {"accuracy": accuracy(y, pred),
            "loss": float(-log_probs[np.arange(y.shape[0]), y].mean()),
            "macro_f1": macro_f1(confusion_matrix(y, pred, z.shape[1]))}


def classification_metrics(y_true, probs, label_names: Sequence[str], texts: Sequence[str] | None = None,
                           ids: Sequence[str] | None = None, pairs: Sequence[str | None] | None = None,
                           bootstrap: int = 1000, seed: int = 0, n_bins: int = DEFAULT_BINS,
                           top_k: int = 10) -> dict[str, Any]:
    """All the metrics of one evaluation as a JSON-serialisable dict.

    y_true: (N,) class indices into `label_names`; probs: (N, K) probabilities (numpy or torch).
    `bootstrap` resamples for the 95% intervals (0: none). `texts`/`ids`/`pairs` label the most
    confidently wrong examples (`top_k` of them).
    """
    label_names = [str(x) for x in label_names]
    y, p = _check(y_true, probs, len(label_names))
    k = len(label_names)
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    per = per_class_scores(cm)
    result: dict[str, Any] = {"n_examples": int(y.shape[0]), "label_names": label_names,
                              "accuracy": accuracy(y, pred)}
    result.update(averaged_scores(cm))
    result["roc_auc"] = roc_auc(y, p[:, 1]) if k == 2 else None
    if bootstrap:
        result["intervals"] = {"method": "percentile bootstrap", "level": 0.95, "resamples": int(bootstrap),
                               "seed": int(seed), **bootstrap_intervals(y, pred, k, bootstrap, seed)}
    else:
        result["intervals"] = None
    cal = calibration(y, p, n_bins)
    result["ece"] = cal["ece"]
    result["per_class"] = {
        name: {"precision": float(per["precision"][j]), "recall": float(per["recall"][j]),
               "f1": float(per["f1"][j]), "support": int(per["support"][j]), "predicted": int(per["predicted"][j])}
        for j, name in enumerate(label_names)
    }
    result["confusion_matrix"] = cm.tolist()
    result["calibration"] = cal
    result["confident_errors"] = confident_errors(y, p, label_names, texts, ids, pairs, top_k)
    return result


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A short human summary of `classification_metrics` output."""
    ci = metrics.get("intervals") or {}

    def with_ci(name: str) -> str:
        v = metrics[name]
        if name in ci:
            lo, hi = ci[name]
            return f"{v:.4f} (95% CI {lo:.4f}–{hi:.4f})"
        return f"{v:.4f}"

    lines = [f"examples: {metrics['n_examples']:,}",
             f"accuracy: {with_ci('accuracy')}",
             f"macro F1: {with_ci('macro_f1')}   weighted F1: {metrics['weighted_f1']:.4f}   "
             f"macro precision {metrics['macro_precision']:.4f}, recall {metrics['macro_recall']:.4f}"]
    if metrics.get("roc_auc") is not None:
        lines.append(f"ROC-AUC ({metrics['label_names'][1]} vs {metrics['label_names'][0]}): {metrics['roc_auc']:.4f}")
    lines.append(f"ECE ({metrics['calibration']['n_bins']} bins): {metrics['ece']:.4f}")
    width = max(len(n) for n in metrics["label_names"])
    for name, row in metrics["per_class"].items():
        lines.append(f"  {name:<{width}}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                     f"F1 {row['f1']:.3f}  support {row['support']:,}")
    return lines
