"""The labelled-budget experiment's arithmetic (tools/label_budget.py): step schedule, intervals over
seeds, pairing of a pretrained model with its random-init twin, the table and the figure."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from bertlab.plots import new_figure, plot_label_budget

spec = importlib.util.spec_from_file_location("label_budget", Path(__file__).resolve().parents[1] / "tools" / "label_budget.py")
label_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(label_budget)


def test_steps_grow_with_n_between_the_floor_and_the_full_data_budget():
    assert label_budget.steps_for("tiny-random", 100) == 200  # 20 passes of 100 = 63 steps: the floor
    assert label_budget.steps_for("tiny-pretrained", 1000) == math.ceil(20 * 1000 / 32)
    assert label_budget.steps_for("tiny-random", 10_000) == 1500  # make results' budget on all the data
    assert label_budget.steps_for("minilm-pretrained", 100) == 100
    assert label_budget.steps_for("minilm-random", 3000) == 938


def test_t_interval_matches_students_t():
    values = [0.70, 0.72, 0.74, 0.71, 0.73]
    lo, hi = label_budget.t_interval(values)
    half = 2.776 * np.std(values, ddof=1) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((0.72 - half, 0.72 + half))
    assert label_budget.t_interval([0.5]) == [0.5, 0.5]


def records():
    out = []
    for seed, (rand, pre) in enumerate([(0.60, 0.66), (0.62, 0.65), (0.58, 0.66), (0.61, 0.64), (0.60, 0.67)]):
        out += [{"data": "d", "n_labels": 100, "model": "tiny-random", "seed": seed, "test_accuracy": rand},
                {"data": "d", "n_labels": 100, "model": "tiny-pretrained", "seed": seed, "test_accuracy": pre},
                {"data": "d", "n_labels": 100, "model": "tfidf", "seed": seed, "test_accuracy": 0.63}]
    # at N = 1000 the pretrained model ran one seed fewer: only the shared seeds are paired
    for seed in range(5):
        out.append({"data": "d", "n_labels": 1000, "model": "tiny-random", "seed": seed, "test_accuracy": 0.70 + seed / 100})
    for seed in range(4):
        out.append({"data": "d", "n_labels": 1000, "model": "tiny-pretrained", "seed": seed, "test_accuracy": 0.70 + seed / 100})
    return out


def test_gains_are_paired_by_seed_and_say_whether_the_interval_excludes_zero():
    points, gains = label_budget.summarize(records())
    assert {(p["n_labels"], p["model"]) for p in points} >= {(100, "tfidf"), (1000, "tiny-pretrained")}
    g100 = next(g for g in gains if g["n_labels"] == 100)
    diffs = [0.06, 0.03, 0.08, 0.03, 0.07]
    assert g100["difference"] == pytest.approx(np.mean(diffs))
    assert g100["ci"] == pytest.approx(label_budget.t_interval(diffs))
    assert g100["ci"][0] > 0 and g100["seeds_ahead"] == 5 and g100["against"] == "tiny-random"
    g1000 = next(g for g in gains if g["n_labels"] == 1000)
    assert g1000["seeds"] == 4 and g1000["difference"] == pytest.approx(0.0)
    assert len(gains) == 2  # tfidf has no twin
    text = label_budget.markdown(records(), {"date": "2026-12-07", "machine": "test"})
    assert "| 0.630 (0.630–0.630), 5 seeds |" in text and text.index("tiny-random") < text.index("tfidf")
    assert "excludes zero" in text and "includes zero" in text
    # N is ordered as a number: 300 before 1,000 (a string order put "1000" before "300")
    more = records() + [{"data": "d", "n_labels": 300, "model": m, "seed": 0, "test_accuracy": 0.6}
                        for m in ("tiny-random", "tiny-pretrained")]
    points, gains = label_budget.summarize(more)
    assert [g["n_labels"] for g in gains] == [100, 300, 1000]
    assert [p["n_labels"] for p in points if p["model"] == "tiny-random"] == [100, 300, 1000]
    text = label_budget.markdown(more, {"date": "2026-12-07", "machine": "test"})
    assert text.index("- N = 300:") < text.index("- N = 1,000:")


def test_figure_draws_one_line_per_model_on_a_log_axis():
    points, _ = label_budget.summarize(records())
    ax = new_figure().subplots()
    plot_label_budget(points, ax=ax, title="d")
    assert ax.get_xscale() == "log"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["tfidf", "tiny-pretrained", "tiny-random"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "1,000"]  # the sizes run, as numbers


def test_along_finds_every_kept_checkpoint_and_the_final_model(tmp_path):
    run = tmp_path / "tiny-news"
    for step in (2000, 4000):
        (run / "checkpoints" / f"step-{step:08d}").mkdir(parents=True)
        (run / "checkpoints" / f"step-{step:08d}" / "model.safetensors").write_bytes(b"")
    (run / "checkpoints" / "step-00006000").mkdir()  # unfinished: no weights
    (run / "summary.json").write_text('{"steps": 18000}')
    found = label_budget.pretraining_checkpoints(run)
    assert found == {2000: run / "checkpoints" / "step-00002000", 4000: run / "checkpoints" / "step-00004000",
                     18000: run}


def test_along_figure_is_written(tmp_path):
    rows = [{"data": "d", "n_labels": 1000, "step": step, "seed": seed, "test_accuracy": 0.6 + step / 1e5 + seed / 1e3}
            for step in (0, 2000, 4000) for seed in range(3)]
    path = tmp_path / "along.png"
    label_budget.save_along_figure(rows, [(1000, 6.5), (2000, 5.9)], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_never_overwrites_files_it_did_not_write(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "tools" / "label_budget.py"
    for name, text in (("label_budget.json", '{"my": "numbers"}'), ("label_budget.json", '[{"data": 1}]'),
                       ("label_budget.md", "my notes")):
        theirs = tmp_path / f"{name}-{len(text)}"
        theirs.mkdir()
        (theirs / name).write_text(text)
        run = subprocess.run([sys.executable, str(script), "--output", str(theirs), "--runs", str(tmp_path / "runs"),
                              "--data", "rotten_tomatoes", "--models", "tfidf", "--seeds", "0"],
                             capture_output=True, text=True)
        assert run.returncode == 1 and "nothing was changed" in run.stderr
        assert [p.name for p in theirs.iterdir()] == [name] and (theirs / name).read_text() == text
        assert not (tmp_path / "runs").exists()  # refused before any run


def _pretraining_run(tmp_path, losses):
    import json

    run = tmp_path / "tiny-news"
    (run / "checkpoints" / "step-00002000").mkdir(parents=True)
    rows = [{"step": s, "train_loss": 7.0} for s in (50, 100)]
    rows += [{"step": 1000 * (i + 1), "eval_mlm_loss": loss} for i, loss in enumerate(losses)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"steps": 1000 * len(losses)}))
    return run


def test_the_table_warns_when_the_starting_weights_are_still_on_the_plateau(tmp_path):
    # the shape of results/pretrain/tiny-news: 6.57 at step 1,000, 6.49 at 2,000, off the plateau by 9,000
    run = _pretraining_run(tmp_path, [6.57, 6.49, 6.43, 6.37, 6.31, 6.23, 5.91, 5.56, 5.04])
    final = label_budget.starting_point(run)
    assert final == {"step": 9000, "heldout_mlm_loss": 5.04, "first_step": 1000, "first_heldout_mlm_loss": 6.57,
                     "left_plateau": True}
    early = label_budget.starting_point(run / "checkpoints" / "step-00002000")
    assert early["step"] == 2000 and early["left_plateau"] is False
    assert label_budget.starting_point(tmp_path) is None  # not a pretraining run
    meta = {"date": "2026-12-08", "machine": "test"}
    assert "Warning" in label_budget.markdown(records(), {**meta, "start": early})
    assert "Warning" not in label_budget.markdown(records(), {**meta, "start": final})
    assert "off the word-frequency plateau" in label_budget.markdown(records(), {**meta, "start": final})
    assert "progress is unknown" in label_budget.markdown(records(), {**meta, "start": None})
    tfidf_only = [r for r in records() if r["model"] == "tfidf"]
    assert "plateau" not in label_budget.markdown(tfidf_only, {**meta, "start": early})
    first = label_budget.starting_point(_pretraining_run(tmp_path / "short", [6.57]))
    assert first["step"] == 1000 and first["left_plateau"] is False  # the first evaluation itself
