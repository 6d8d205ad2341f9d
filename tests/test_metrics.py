"""bertlab.metrics against scikit-learn, and calibration / bootstrap / error listing by hand."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from bertlab import metrics as M


def random_case(seed, k, n, imbalance=False, never_predicted=None, ties=False):
    """Labels and probabilities for n examples of k classes (probabilities correlated with labels)."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(k, 0.3)) if imbalance else np.full(k, 1 / k)
    y = rng.choice(k, size=n, p=prior)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if never_predicted is not None:
        logits[:, never_predicted] = -20.0
    if ties:
        logits = np.round(logits, 0)  # many equal scores
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return y, probs


CASES = [  # (seed, classes, examples, imbalance, never-predicted class, ties)
    (0, 2, 500, False, None, False),
    (1, 2, 300, True, None, True),
    (2, 3, 400, False, None, False),
    (3, 5, 250, True, 4, False),
    (4, 7, 1000, True, None, False),
    (5, 20, 600, False, 13, False),
    (6, 20, 150, True, 0, False),  # some classes absent from the labels too
    (7, 2, 40, False, 1, False),   # binary, class 1 never predicted
]


@pytest.mark.parametrize("seed,k,n,imbalance,never,ties", CASES)
def test_counts_and_averages_agree_with_sklearn(seed, k, n, imbalance, never, ties):
    y, probs = random_case(seed, k, n, imbalance, never, ties)
    names = [f"c{j}" for j in range(k)]
    pred = probs.argmax(1)
    out = M.classification_metrics(y, probs, names, bootstrap=0)
    if never is not None:
        assert out["per_class"][names[never]]["predicted"] == 0
    assert abs(out["accuracy"] - accuracy_score(y, pred)) <= 1e-12
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert abs(out[f"{avg}_precision"] - p) <= 1e-12
        assert abs(out[f"{avg}_recall"] - r) <= 1e-12
        assert abs(out[f"{avg}_f1"] - f) <= 1e-12
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(k)), average=None, zero_division=0)
    for j, name in enumerate(names):
        row = out["per_class"][name]
        assert abs(row["precision"] - p[j]) <= 1e-12 and abs(row["recall"] - r[j]) <= 1e-12
        assert abs(row["f1"] - f[j]) <= 1e-12 and row["support"] == s[j]
    assert out["confusion_matrix"] == confusion_matrix(y, pred, labels=list(range(k))).tolist()
    if k == 2:
        if len(set(y)) == 2:
            assert abs(out["roc_auc"] - roc_auc_score(y, probs[:, 1])) <= 1e-12
    else:
        assert out["roc_auc"] is None


def test_roc_auc_with_heavy_ties_matches_sklearn():
    rng = np.random.default_rng(11)
    for n in (2, 5, 50, 3000):
        y = rng.integers(0, 2, n)
        y[0], y[-1] = 0, 1
        scores = rng.integers(0, 4, n) / 4  # few distinct values
        assert abs(M.roc_auc(y, scores) - roc_auc_score(y, scores)) <= 1e-12
    assert M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]) is None
    assert M.roc_auc([0, 1], [0.4, 0.4]) == 0.5
    assert M.roc_auc([0, 1], [0.1, 0.9]) == 1.0


def test_accepts_torch_and_is_json_serialisable():
    y, probs = random_case(8, 3, 120)
    a = M.classification_metrics(torch.tensor(y), torch.tensor(probs), ["a", "b", "c"],
                                 texts=[f"t{i}" for i in range(120)], ids=[str(i) for i in range(120)], bootstrap=50)
    b = M.classification_metrics(y, probs, ["a", "b", "c"], bootstrap=50)
    assert json.loads(json.dumps(a))["accuracy"] == b["accuracy"]
    assert a["intervals"] == b["intervals"]  # seeded


def test_majority_predictor_accuracy_is_misleading_on_imbalanced_data():
    y = np.array([0] * 95 + [1] * 5)
    probs = np.tile([0.95, 0.05], (100, 1))  # always the majority class
    out = M.classification_metrics(y, probs, ["ham", "spam"], bootstrap=0)
    assert out["accuracy"] == 0.95
    assert out["macro_f1"] < 0.5  # F1 0.974 for ham, 0 for spam
    assert out["per_class"]["spam"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5, "predicted": 0}
    assert out["roc_auc"] == 0.5  # constant scores rank nothing


def test_ece_by_hand_on_a_tiny_example():
    # confidences 0.9, 0.95, 0.6, 0.62, 0.7: one per bin, bins ((m-1)/15, m/15] numbered from 0
    probs = np.array([[0.9, 0.1], [0.05, 0.95], [0.6, 0.4], [0.38, 0.62], [0.3, 0.7]])
    y = np.array([0, 0, 1, 1, 1])  # correct, wrong, wrong, correct, correct
    cal = M.calibration(y, probs)
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = [j / 15 for j in range(16)]
    expected = 0.0
    for m in range(15):
        inside = [(edges[m] < c <= edges[m + 1]) for c in conf]
        if any(inside):
            idx = np.flatnonzero(inside)
            expected += len(idx) / 5 * abs(correct[idx].mean() - conf[idx].mean())
    assert cal["ece"] == pytest.approx(expected, abs=1e-15)
    # 0.9 -> bin 13 (13/15, 14/15]; 0.95 -> 14; 0.6 = 9/15 -> 8 (the upper edge belongs to the bin);
    # 0.62 -> 9; 0.7 -> 10. One example per bin, so ECE = mean |correct - confidence|.
    by_hand = (1 / 5 * abs(1 - 0.9) + 1 / 5 * abs(0 - 0.95) + 1 / 5 * abs(0 - 0.6) + 1 / 5 * abs(1 - 0.62)
               + 1 / 5 * abs(1 - 0.7))
    assert cal["ece"] == pytest.approx(by_hand, abs=1e-12)
    counts = [b["count"] for b in cal["bins"]]
    assert [m for m, c in enumerate(counts) if c] == [8, 9, 10, 13, 14] and sum(counts) == 5
    assert cal["bins"][0]["accuracy"] is None and cal["mce"] == pytest.approx(0.95)
    assert len(cal["bins"]) == 15 and cal["bins"][-1]["upper"] == 1.0


def test_ece_of_a_perfectly_calibrated_model_is_near_zero():
    rng = np.random.default_rng(3)
    n, k = 20000, 3
    conf = rng.uniform(1 / k, 1, n)
    pred = rng.integers(0, k, n)
    probs = np.empty((n, k))
    probs[:] = ((1 - conf) / (k - 1))[:, None]
    probs[np.arange(n), pred] = conf
    correct = rng.uniform(size=n) < conf  # right exactly as often as the confidence says
    y = np.where(correct, pred, (pred + rng.integers(1, k, n)) % k)
    assert M.expected_calibration_error(y, probs) < 0.02
    # and an over-confident model is not
    sharp = probs ** 4
    sharp /= sharp.sum(1, keepdims=True)
    assert M.expected_calibration_error(y, sharp) > 0.1


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data():
    widths = []
    for n in (200, 5000):
        y, probs = random_case(21, 3, n)
        out = M.classification_metrics(y, probs, ["a", "b", "c"], bootstrap=1000, seed=0)
        ci = out["intervals"]
        for name in ("accuracy", "macro_f1"):
            lo, hi = ci[name]
            assert lo <= out[name] <= hi
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
        # the normal approximation of the accuracy interval's width
        acc = out["accuracy"]
        assert widths[-1] == pytest.approx(2 * 1.96 * (acc * (1 - acc) / n) ** 0.5, rel=0.2)
    assert widths[1] < widths[0] / 3
    y, probs = random_case(21, 3, 200)
    other = M.classification_metrics(y, probs, ["a", "b", "c"], bootstrap=1000, seed=1)["intervals"]
    assert other["accuracy"] != M.classification_metrics(y, probs, ["a", "b", "c"], seed=0)["intervals"]["accuracy"]


def test_bootstrap_macro_f1_matches_a_plain_loop():
    y, probs = random_case(5, 4, 60, imbalance=True)
    pred = probs.argmax(1)
    ci = M.bootstrap_intervals(y, pred, 4, resamples=300, seed=7)
    rng = np.random.Generator(np.random.PCG64(7))
    f1s, accs = [], []
    for _ in range(300):
        idx = rng.integers(0, 60, size=60)
        f1s.append(precision_recall_fscore_support(y[idx], pred[idx], average="macro", zero_division=0)[2])
        accs.append(accuracy_score(y[idx], pred[idx]))
    assert ci["macro_f1"] == pytest.approx(list(np.percentile(f1s, [2.5, 97.5])), abs=1e-12)
    assert ci["accuracy"] == pytest.approx(list(np.percentile(accs, [2.5, 97.5])), abs=1e-12)


def test_confident_errors_are_the_most_confident_wrong_predictions():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01], [0.3, 0.7]])
    y = np.array([1, 1, 1, 0, 0])  # wrong: rows 0 (0.9), 2 (0.6), 4 (0.7)
    out = M.confident_errors(y, probs, ["neg", "pos"], texts=list("abcde"), ids=["r0", "r1", "r2", "r3", "r4"], top_k=2)
    assert [e["id"] for e in out] == ["r0", "r4"]
    assert out[0] == {"index": 0, "id": "r0", "text": "a", "true": "pos", "predicted": "neg", "confidence": 0.9,
                      "true_probability": 0.1}
    assert len(M.confident_errors(y, probs, ["neg", "pos"], top_k=None)) == 3


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="columns"):
        M.classification_metrics([0, 1], np.eye(2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="labels"):
        M.classification_metrics([0, 2], np.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match="no examples"):
        M.classification_metrics([], np.zeros((0, 2)), ["a", "b"])


def test_summary_lines():
    y, probs = random_case(0, 2, 100)
    lines = M.summary_lines(M.classification_metrics(y, probs, ["neg", "pos"], bootstrap=100))
    text = "\n".join(lines)
    assert "accuracy" in text and "95% CI" in text and "ROC-AUC" in text and "ECE" in text and "pos" in text
