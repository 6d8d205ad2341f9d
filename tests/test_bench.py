"""The benchmark runs (a smoke run at tiny size: no speed is asserted here)."""

import json
from pathlib import Path

import pytest

from bertlab.bench import bench_train_step
from bertlab.cli import main as cli_main


def main(argv):
    return cli_main(["bench", *argv])

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.slow  # times full training steps at several lengths
def test_bench_modes_lengths_and_memory():
    from bertlab.bench import bench

    for mode in ("forward", "backward", "step"):
        r = bench("finetune", "tiny", vocab_size=300, seq_len=32, batch_size=4, steps=1, rounds=1,
                  lengths="rotten_tomatoes", mode=mode)
        assert r["mode"] == mode and r["variable_length"] and 0 < r["padding_share"] < 1
        assert r["bertlab_tokens_per_s"] > 0 and r["transformers_tokens_per_s"] > 0
        assert ("bertlab_saved_activation_bytes" in r) == (mode != "forward")
    # The sparse MLM head keeps far less for the backward pass than the full projection.
    r = bench("pretrain", "tiny", vocab_size=20000, seq_len=64, batch_size=8, steps=1, rounds=1)
    assert r["bertlab_saved_activation_bytes"] < 0.5 * r["transformers_saved_activation_bytes"]


def test_real_lengths_and_flops():
    from bertlab.bench import peak_flops, real_lengths, training_flops_per_token
    from bertlab.config import BertConfig

    lengths = real_lengths("rotten_tomatoes")
    assert len(lengths) > 1000 and min(lengths) >= 3 and 20 < sum(lengths) / len(lengths) < 60
    base = BertConfig.from_preset("base")
    # 6 x 85M encoder weights per token (+ attention) for the classifier at sequence 128.
    assert 6 * 84.9e6 < training_flops_per_token(base, 128, "finetune") < 6 * 85e6 + 12 * 12 * 128 * 768 + 1
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("some CPU") is None


def test_bench_suite_smoke_writes_json(tmp_path):
    out = tmp_path / "suite.json"
    assert main(["--suite", "smoke", "--steps", "1", "--rounds", "1", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["suite"] == "smoke" and len(data["results"]) == 2
    assert data["environment"]["cpu_cores"] >= 1 and "bertlab" in data["environment"]


def test_output_never_overwrites_a_file_bench_did_not_write(tmp_path, capsys):
    from bertlab.bench import replaceable_output

    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    assert main(["--preset", "tiny", "--vocab-size", "100", "--seq-len", "8", "--batch-size", "2",
                 "--steps", "1", "--rounds", "1", "--output", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--output" in err and "not a result of bertlab bench" in err
    assert notes.read_text() == '{"my": "notes"}'
    (tmp_path / "text.txt").write_text("not json")
    assert not replaceable_output(tmp_path / "text.txt") and replaceable_output(tmp_path / "new.json")
    mine = tmp_path / "mine.json"
    mine.write_text('{"bertlab_command": "bench", "ratio": 1.0}')
    assert replaceable_output(mine)
    assert replaceable_output(ROOT / "results" / "bench" / "cpu-suite.json")  # written before the marker
