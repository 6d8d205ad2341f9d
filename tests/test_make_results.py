"""`make results` (tools/make_results.py) end to end at a tiny budget on the embedded data set."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.cli import main
from bertlab.data import load_corpus

pytestmark = pytest.mark.slow  # pretrains, fine-tunes and evaluates in a subprocess

ROOT = Path(__file__).resolve().parents[1]


def test_make_results_quick(tmp_path):
    corpus = tmp_path / "news100.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in load_corpus("news")[:100]) + "\n", encoding="utf-8")
    pretrained = tmp_path / "pretrained"
    assert main(["pretrain", "--corpus", str(corpus), "--vocab-size", "1000", "--max-seq-length", "64",
                 "--batch-size", "8", "--steps", "4", "--heldout", "5", "--max-eval-examples", "16",
                 "--output", str(pretrained)]) == 0
    out = tmp_path / "results"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_results.py"), "--pretrained", str(pretrained),
                    "--runs", str(tmp_path / "runs"), "--output", str(out), "--data", "rotten_tomatoes",
                    "--tiny-steps", "4", "--tiny-seeds", "0", "1", "--minilm-steps", "2",
                    "--max-train-examples", "64"],
                   check=True, capture_output=True, text=True)
    result = json.loads((out / "results.json").read_text())
    rows = result["tables"]["rotten_tomatoes"]
    assert [r["model"] for r in rows] == ["majority class", "TF-IDF + logistic regression", "tiny BERT, random init",
                                          "tiny BERT, pretrained on news", "MiniLM-L6 (real pretrained weights)"]
    for r in rows:
        lo, hi = r["accuracy_ci"]
        assert 0 <= lo <= r["accuracy"] <= hi <= 1 and 0 <= r["macro_f1"] <= 1
    for r in rows[2:]:
        assert r["below_tfidf"] == (r["accuracy"] < rows[1]["accuracy"])
    assert abs(rows[0]["accuracy"] - 0.578) < 0.01  # the majority class share of the test split
    md = (out / "results.md").read_text()
    assert "| model | accuracy (95% CI) | macro-F1 | learning rate (validation accuracy) | CPU training time |" in md
    assert md.count("\n|") >= 7
    # Each tiny model tried both default learning rates (seed 0) and kept its best on validation; only the
    # kept run was evaluated on the test split, and that rate was run again with the other seed.
    runs = tmp_path / "runs"
    for r, stem in zip(rows[2:4], ("tiny-scratch", "tiny-pretrained")):
        by_lr = r["validation_accuracy_by_lr"]
        assert set(by_lr) == {"0.0003", "0.001"}
        assert by_lr[f"{r['learning_rate']:g}"] == max(by_lr.values())
        kept = f"{stem}-rotten_tomatoes-lr{r['learning_rate']:g}"
        evaluated = sorted(p.parent.name for p in runs.glob(f"{stem}-rotten_tomatoes-lr*/eval-*"))
        assert evaluated == [kept, f"{kept}-seed1"]
        # The row is the mean over the seeds; each seed's accuracy is its own evaluation's.
        assert r["seeds"] == [0, 1]
        by_seed = {s: json.loads((runs / (kept + ("" if s == "0" else f"-seed{s}")) / "eval-rotten_tomatoes-test"
                                  / "metrics.json").read_text())["accuracy"] for s in ("0", "1")}
        assert r["accuracy_by_seed"] == {s: round(v, 4) for s, v in by_seed.items()}
        assert abs(r["accuracy"] - sum(by_seed.values()) / 2) < 1e-9
        seed_args = [json.loads((runs / (kept + ("" if s == "0" else f"-seed{s}")) / "args.json").read_text())["seed"]
                     for s in ("0", "1")]
        assert seed_args == [0, 1]
    # The gain of pretraining: the difference of the two rows, inside its paired interval.
    gain = result["pretraining_gain"]["rotten_tomatoes"]
    assert abs(gain["difference"] - (rows[3]["accuracy"] - rows[2]["accuracy"])) < 1e-9
    assert gain["ci"][0] <= gain["difference"] <= gain["ci"][1] and gain["seeds"] == 2
    assert "Pretraining on news minus random init, mean over 2 fine-tuning seeds" in md
    for r in rows[2:]:  # each fine-tuned row carries its validation curve, from step 0 to the last step
        steps = [s for s, _ in r["validation_curve"]]
        assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == r["steps"]
        assert all(0 <= a <= 1 for _, a in r["validation_curve"])
