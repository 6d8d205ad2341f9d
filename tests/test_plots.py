"""Saving a figure to a file must not disturb pyplot (a notebook's inline plots)."""

import matplotlib
import matplotlib.pyplot as plt

from bertlab.finetune import save_learning_curve
from bertlab.plots import save_confusion_matrix, save_pretraining_curves


def test_saving_pngs_leaves_pyplot_alone(tmp_path):
    previous = matplotlib.get_backend()
    plt.switch_backend("svg")  # stands in for a notebook's inline backend: it must stay selected
    try:
        _save_all_and_check(tmp_path)
    finally:
        plt.switch_backend(previous)


def _save_all_and_check(tmp_path):
    backend, open_before = matplotlib.get_backend(), plt.get_fignums()
    history = [{"step": 1, "train_loss": 1.0, "train_mlm_loss": 2.0, "train_mlm_accuracy": 0.1},
               {"step": 2, "eval_loss": 0.8, "eval_accuracy": 0.6, "eval_mlm_loss": 1.5, "eval_mlm_accuracy": 0.2}]
    paths = [save_learning_curve(history, tmp_path / "a.png"),
             save_pretraining_curves(history, tmp_path / "b.png"),
             save_confusion_matrix([[3, 1], [0, 4]], ["neg", "pos"], tmp_path / "c.png")]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_before
