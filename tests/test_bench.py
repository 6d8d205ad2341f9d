"""The benchmark runs (a smoke run at tiny size: no speed is asserted here)."""

import json

from bertlab.bench import bench_train_step, main


def test_bench_pretraining_step_smoke():
    r = bench_train_step("pretrain", "tiny", vocab_size=500, seq_len=32, batch_size=4, steps=1, rounds=1)
    assert r["loss_difference"] < 1e-4
    assert r["bertlab_tokens_per_s"] > 0 and r["transformers_tokens_per_s"] > 0
    assert abs(r["ratio"] - r["bertlab_tokens_per_s"] / r["transformers_tokens_per_s"]) < 1e-9


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--task", "finetune", "--vocab-size", "300", "--seq-len", "16", "--batch-size", "2",
                 "--steps", "1", "--rounds", "1", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["task"] == "finetune" and data["environment"]["device"] == "cpu"
    assert "torch" in data["environment"] and "date" in data["environment"]
    assert "ratio" in capsys.readouterr().out
