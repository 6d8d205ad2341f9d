"""The training loop: schedule, parameter groups, exact resume after SIGKILL, torchrun/DDP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from bertlab import BertConfig, BertForSequenceClassification
from bertlab.train import epoch_batches, latest_checkpoint, linear_schedule, parameter_groups

SCRIPT = Path(__file__).with_name("train_script.py")
ENV = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]), "OMP_NUM_THREADS": "1"}


def run(*args, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=ENV, check=True,
                          capture_output=True, text=True, **kw)


def test_linear_warmup_then_decay():
    f = linear_schedule(warmup=4, total=10)
    assert [round(f(s), 4) for s in range(11)] == [0.25, 0.5, 0.75, 1.0, 1.0, 0.8333, 0.6667, 0.5, 0.3333, 0.1667, 0.0]


def test_no_weight_decay_on_biases_and_layernorm():
    model = BertForSequenceClassification(BertConfig.from_preset("tiny", vocab_size=50))
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01


def test_epoch_batches_are_seeded_permutations_and_length_grouping_pads_less():
    a = epoch_batches(103, 10, seed=1, epoch=0)
    assert a == epoch_batches(103, 10, seed=1, epoch=0) != epoch_batches(103, 10, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(103)) and len(a[-1]) == 3
    assert len(epoch_batches(103, 10, seed=1, epoch=0, drop_last=True)) == 10
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 500, (1000,), generator=g).tolist()

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    grouped = epoch_batches(1000, 16, seed=1, epoch=0, lengths=lengths)
    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert padding(grouped) < 0.2 * padding(epoch_batches(1000, 16, seed=1, epoch=0))


@pytest.mark.slow  # three training subprocesses, one killed
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    run(tmp_path / "straight", "--steps", 12, "--save-every", 4)
    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(interrupted), "--steps", "12", "--save-every", "4",
                             "--slow", "0.4"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpt = latest_checkpoint(interrupted)
        if ckpt is not None and ckpt.name == "step-00000004":
            break
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    time.sleep(0.6)  # let it get a step or so past the checkpoint, then kill it hard
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (interrupted / "final-rank0.safetensors").exists(), "the run finished before the kill"
    logged = [json.loads(x)["step"] for x in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert 4 <= max(logged) < 12

    run(interrupted, "--steps", 12, "--save-every", 4, "--resume")
    a = load_file(str(tmp_path / "straight" / "final-rank0.safetensors"))
    b = load_file(str(interrupted / "final-rank0.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    steps = [json.loads(x)["step"] for x in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13)), "the log has each step once after the resume"
    assert json.loads((interrupted / "losses-rank0.json").read_text()) == pytest.approx(
        json.loads((tmp_path / "straight" / "losses-rank0.json").read_text()), abs=1e-6)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # torchrun with two processes (DDP), then a one-process run
def test_torchrun_two_processes_match_one_process(tmp_path):
    """2 ranks x batch 4 (gloo, CPU) == 1 process x batch 8: identical weights on both ranks, same losses."""
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={free_port()}", str(SCRIPT), str(tmp_path / "ddp"), "--steps", "6", "--batch-size", "4",
         "--dropout", "0.0"],
        env=ENV, check=True, capture_output=True, text=True, timeout=300,
    )
    run(tmp_path / "single", "--steps", 6, "--batch-size", 8, "--dropout", 0.0)
    r0 = load_file(str(tmp_path / "ddp" / "final-rank0.safetensors"))
    r1 = load_file(str(tmp_path / "ddp" / "final-rank1.safetensors"))
    single = load_file(str(tmp_path / "single" / "final-rank0.safetensors"))
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert_close(r0[k], single[k], atol=1e-5, rtol=1e-4, msg=k)
    ddp_losses = json.loads((tmp_path / "ddp" / "losses-rank0.json").read_text())
    single_losses = json.loads((tmp_path / "single" / "losses-rank0.json").read_text())
    assert ddp_losses == pytest.approx(single_losses, abs=1e-5)
    assert len(ddp_losses) == 6


def _toy_trainer(tmp_path, **overrides):
    sys.path.insert(0, str(SCRIPT.parent))
    from train_script import Toy, collate

    from bertlab.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.from_preset("tiny", vocab_size=64, max_position_embeddings=32))
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=8, batch_size=8, learning_rate=1e-3,
                      warmup_steps=1, log_every=1, progress=False, **overrides)
    return Trainer(model, Toy(), collate, cfg)


def test_bf16_autocast_path_runs_on_cpu(tmp_path):
    trainer = _toy_trainer(tmp_path, amp="bf16")
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    result = trainer.train()
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 8 and all(loss == loss for loss in losses)  # no NaN
    assert trainer.model.classifier.weight.dtype == torch.float32  # master weights stay float32


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    """4 x 2 accumulated micro-batches make the same update as one batch of 8 (dropout off)."""
    a = _toy_trainer(tmp_path / "a", grad_accum_steps=1)
    b = _toy_trainer(tmp_path / "b", grad_accum_steps=2)
    b.config.batch_size = 4
    b.global_batch = 4
    for t in (a, b):
        t.model.apply(lambda m: setattr(m, "p", 0.0) if isinstance(m, torch.nn.Dropout) else None)
        for layer in t.model.bert.encoder.layer:
            layer.attention.self.dropout_p = 0.0
        t.total_steps = 3
    a.train(), b.train()
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert_close(p, q, atol=2e-6, rtol=1e-5, msg=name)


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        trainer = _toy_trainer(tmp_path, tensorboard=True)
        with pytest.raises(ValueError, match="needs the tensorboard package"):
            trainer.train()
    else:
        result = _toy_trainer(tmp_path, tensorboard=True).train()
        assert (tmp_path / "run" / "tensorboard").is_dir() and result.step == 8


class NamedLosses(torch.nn.Module):
    """A model that is not BERT: its output names two parts of its loss."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, x, y):
        a = (self.w(x) - y).pow(2).mean()
        b = self.w.weight.pow(2).sum()
        return type("Out", (), {"loss": a + b, "losses": {"fit_loss": a, "size_loss": b}})()


def test_trainer_logs_the_named_losses_and_tensor_metrics_of_any_model(tmp_path, monkeypatch):
    from bertlab.train import TrainConfig, Trainer

    data = [{"x": torch.tensor([float(i)]), "y": torch.tensor([2.0 * i])} for i in range(16)]
    collate = lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]}  # noqa: E731
    cfg = TrainConfig(output_dir=str(tmp_path), max_steps=6, batch_size=4, grad_accum_steps=2, log_every=3,
                      progress=False)
    trainer = Trainer(NamedLosses(), data, collate, cfg, metrics_fn=lambda batch, out: {"ones": torch.ones(())})
    reads = []  # tensors read on the CPU (.item() / float()): only at the two log steps, not per micro-batch
    for name in ("item", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, _f=original: reads.append(trainer.step) or _f(t))
    records = trainer.train().history
    monkeypatch.undo()
    assert [r["step"] for r in records] == [3, 6]
    assert set(reads) <= {3, 6}, reads
    for r in records:
        assert {"train_loss", "train_fit_loss", "train_size_loss", "train_ones", "grad_norm"} <= r.keys()
        assert all(isinstance(r[k], float) for k in ("train_loss", "train_fit_loss", "train_ones", "grad_norm"))
        assert r["train_ones"] == pytest.approx(1.0)
        assert r["train_loss"] == pytest.approx(r["train_fit_loss"] + r["train_size_loss"], rel=1e-6)


def test_intervals_per_run_are_resolved_without_changing_the_config(tmp_path):
    from bertlab.train import TrainConfig, Trainer

    model = BertForSequenceClassification(BertConfig.from_preset("tiny", vocab_size=64, max_position_embeddings=32))
    data = [{"input_ids": torch.tensor([5, 6]), "labels": torch.tensor(0)}] * 8

    def trainer(**fields):
        return Trainer(model, data, lambda rows: {}, TrainConfig(output_dir=str(tmp_path), max_steps=45, **fields))

    auto = trainer(log_every=None, evals_per_run=10, save_with_eval=True)
    assert (auto.eval_every, auto.save_every, auto.log_every) == (4, 4, 2)
    assert auto.config.eval_every is None and auto.config.log_every is None  # the config stays as given
    given = trainer(eval_every=5, save_every=7, log_every=3, evals_per_run=10, save_with_eval=True)
    assert (given.eval_every, given.save_every, given.log_every) == (5, 7, 3)
    plain = trainer()
    assert (plain.eval_every, plain.save_every, plain.log_every) == (None, None, 10)


def test_tied_weights_are_named_by_the_model():
    from bertlab import BertForMaskedLM, BertForPreTraining, BertModel

    assert BertForPreTraining.tied_weights_keys == BertForMaskedLM.tied_weights_keys == ("cls.predictions.decoder.weight",)
    assert BertModel.tied_weights_keys == BertForSequenceClassification.tied_weights_keys == ()
