"""`bertlab pretrain` end to end on a small corpus, its run folder, and its errors."""

import json
import subprocess
import sys

import pytest
import torch
import transformers

from bertlab import BertConfig, BertForPreTraining
from bertlab.cli import main
from bertlab.data import load_corpus


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """The first 150 news articles as a local text file: documents separated by blank lines."""
    docs = load_corpus("news")[:150]
    path = tmp_path_factory.mktemp("corpus") / "news150.txt"
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_folder(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["pretrain", "--corpus", str(small_corpus), "--preset", "tiny", "--vocab-size", "1000",
                 "--max-seq-length", "64", "--batch-size", "8", "--steps", "12", "--save-every", "6",
                 "--log-every", "3", "--eval-every", "6", "--heldout", "10", "--max-eval-examples", "64",
                 "--dropout", "0.05", "--limit-alphabet", "60", "--output", str(out)])
    assert code == 0
    return out


def test_run_folder_contents(run_folder):
    names = {p.name for p in run_folder.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "metrics.jsonl",
            "pretraining_curves.png", "summary.json", "args.json", "checkpoints"} <= names
    records = [json.loads(x) for x in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_mlm_loss" in r] == [3, 6, 9, 12]
    evals = [r for r in records if "eval_mlm_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    for r in evals:
        assert 0 <= r["eval_mlm_accuracy"] <= 1 and 0 <= r["eval_nsp_accuracy"] <= 1
        assert r["eval_perplexity"] == pytest.approx(torch.tensor(r["eval_mlm_loss"]).exp().item(), rel=1e-6)
    summary = json.loads((run_folder / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["vocab_size"] == 1000
    config = json.loads((run_folder / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.05  # --dropout
    assert summary["last_train_mlm_loss"] < summary["first_train_mlm_loss"]  # it learns something
    vocab = (run_folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    single = [t for t in vocab[5:] if len(t) == 1]  # the alphabet: characters that stand alone
    assert 40 <= len(single) <= 60  # --limit-alphabet 60 (the news text has more distinct characters)


def test_run_folder_loads_in_bertlab_and_transformers(run_folder):
    ours = BertForPreTraining.from_pretrained(run_folder)
    assert ours.loading_info["missing_keys"] == []
    ref = transformers.BertForPreTraining.from_pretrained(run_folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(run_folder)
    batch = tok(["the president said on monday", "shares fell"], ["markets rose.", "x"], padding=True,
                return_tensors="pt")
    batch = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        a, b = ours(**batch), ref(**batch)
    real = batch["attention_mask"].bool()  # padding positions carry no meaning (bertlab returns zeros there)
    torch.testing.assert_close(a.prediction_logits[real], b.prediction_logits[real], atol=1e-5, rtol=0)


def test_fill_mask_command(run_folder, capsys):
    assert main(["fill-mask", "--model", str(run_folder), "--top-k", "3", "the [MASK] said"]) == 0
    out = capsys.readouterr().out
    assert "[MASK] 1:" in out and out.count("(0.") + out.count("(1.") == 3


def test_resume_continues_from_the_latest_checkpoint(run_folder, small_corpus):
    code = main(["pretrain", "--corpus", str(small_corpus), "--preset", "tiny", "--max-seq-length", "64",
                 "--batch-size", "8", "--steps", "15", "--log-every", "3", "--heldout", "10",
                 "--max-eval-examples", "64", "--output", str(run_folder), "--resume"])
    assert code == 0
    steps = [json.loads(x)["step"] for x in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 15 and steps.count(12) >= 1
    assert json.loads((run_folder / "summary.json").read_text())["steps"] == 15


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bertlab.cli", "pretrain", *map(str, args)],
                          capture_output=True, text=True, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("case", ["empty", "missing", "undecodable", "tiny_vocab", "alphabet_too_big", "bad_alphabet",
                                  "long_seq", "bad_dropout", "not_empty"])
def test_bad_input_one_line_exit_2_no_run_folder(case, tmp_path, small_corpus):
    out = tmp_path / "run"
    corpus = small_corpus
    extra = []
    if case == "empty":
        corpus = tmp_path / "empty.txt"
        corpus.write_text("  \n\n \n")
        expect = "empty"
    elif case == "missing":
        corpus = tmp_path / "nope.txt"
        expect = "nope.txt"
    elif case == "undecodable":
        corpus = tmp_path / "bad.txt"
        corpus.write_bytes(b"fine line\n\xff\xfe broken bytes\n")
        expect = "bad.txt"
    elif case == "tiny_vocab":
        extra = ["--vocab-size", "10"]
        expect = "--vocab-size 10"
    elif case == "alphabet_too_big":
        extra = ["--vocab-size", "60", "--limit-alphabet", "5000"]
        expect = "--limit-alphabet 5000"
    elif case == "bad_alphabet":
        extra = ["--limit-alphabet", "0"]
        expect = "--limit-alphabet 0"
    elif case == "long_seq":
        extra = ["--max-seq-length", "1024"]
        expect = "512 positions"
    elif case == "bad_dropout":
        extra = ["--dropout", "1.5"]
        expect = "--dropout 1.5"
    else:
        out.mkdir()
        (out / "something").write_text("x")
        expect = "not empty"
    proc = cli("--corpus", corpus, "--steps", "2", "--output", out, *extra)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and expect in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if case != "not_empty":
        assert not out.exists()
    else:
        assert [p.name for p in out.iterdir()] == ["something"]


def test_pretrain_help_explains_every_flag():
    proc = subprocess.run([sys.executable, "-m", "bertlab.cli", "pretrain", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ["--corpus", "--preset", "--vocab-size", "--max-seq-length", "--batch-size", "--steps", "--output",
                 "--resume", "--tokenizer", "--masked-lm-prob", "--whole-word-mask", "--save-every", "--dropout", "--limit-alphabet"]:
        assert flag in proc.stdout


@pytest.mark.parametrize("block_rows", [3, 1000])
def test_fused_mlm_loss_matches_autograd(monkeypatch, block_rows):
    """The training path's fused projection + cross-entropy (gradients made in the forward pass, a
    block of rows at a time) gives the loss, argmax and gradients of the plain autograd version."""
    import bertlab.model as bm

    vocab = 300
    monkeypatch.setattr(bm, "_FUSED_BLOCK_ELEMENTS", block_rows * vocab)
    torch.manual_seed(0)
    model = bm.BertForPreTraining(BertConfig.from_preset("tiny", vocab_size=vocab)).eval()  # no dropout
    ids = torch.randint(5, vocab, (3, 20))
    labels = torch.full_like(ids, -100)
    labels[:, 1::4] = ids[:, 1::4]
    nsp = torch.tensor([0, 1, 1])

    out = model(input_ids=ids, labels=labels, next_sentence_label=nsp)
    assert out.prediction_logits is None and out.mlm_predictions.shape == (int((labels != -100).sum()),)
    (2.5 * out.loss).backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    body = model.bert(ids)
    selected = labels != -100
    logits = model.cls.predictions(body.last_hidden_state[selected])
    mlm = torch.nn.functional.cross_entropy(logits, labels[selected])
    loss = mlm + torch.nn.functional.cross_entropy(model.cls.seq_relationship(body.pooler_output), nsp)
    (2.5 * loss).backward()
    torch.testing.assert_close(out.mlm_loss, mlm, atol=1e-6, rtol=0)
    assert torch.equal(out.mlm_predictions, logits.argmax(-1))
    for name, p in model.named_parameters():
        torch.testing.assert_close(fused[name], p.grad, atol=1e-6, rtol=1e-5, msg=name)
    with torch.no_grad():  # outside training the logits are kept, as before
        assert model(input_ids=ids, labels=labels).prediction_logits.shape == (int(selected.sum()), vocab)


def test_fused_mlm_loss_exact_when_softmax_underflows():
    """Rows whose target probability underflows float32 (a logit gap of hundreds) still get the exact
    loss and gradients: the log-sum-exp of those rows comes from the logits, not from log(0)."""
    from bertlab.model import _LinearCrossEntropy

    torch.manual_seed(0)
    hidden = (torch.randn(7, 16) * 40).requires_grad_()  # logits spread over hundreds
    weight = torch.randn(50, 16).requires_grad_()
    bias = torch.randn(50).requires_grad_()
    targets = torch.randint(0, 50, (7,))
    loss, pred = _LinearCrossEntropy.apply(hidden, weight, bias, targets, 3)
    ref_logits = torch.nn.functional.linear(hidden, weight, bias)
    ref = torch.nn.functional.cross_entropy(ref_logits, targets)
    assert ref.item() > 100 and torch.isfinite(loss)  # the case is real: some p[t] are exactly 0
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-4)
    assert torch.equal(pred, ref_logits.argmax(-1))
    grads = torch.autograd.grad(loss, (hidden, weight, bias))
    ref_grads = torch.autograd.grad(ref, (hidden, weight, bias))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
