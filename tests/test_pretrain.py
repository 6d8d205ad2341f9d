"""`bertlab pretrain` end to end on a small corpus, its run folder, and its errors."""

import json

import pytest
import torch
import transformers

from bertlab import BertForPreTraining
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
                 "--max-seq-length", "64", "--batch-size", "8", "--steps", "12", "--save-every", "3", "--keep-checkpoints", "3",
                 "--log-every", "3", "--eval-every", "6", "--heldout", "10", "--max-eval-examples", "64",
                 "--dropout", "0.05", "--limit-alphabet", "60", "--output", str(out)])
    assert code == 0
    return out


@pytest.mark.slow  # run_folder pretrains a model
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
    kept = sorted(p.name for p in (run_folder / "checkpoints").glob("step-*"))  # saved at 3, 6, 9, 12; 3 kept
    assert kept == ["step-00000006", "step-00000009", "step-00000012"]
    config = json.loads((run_folder / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.05  # --dropout
    assert summary["last_train_mlm_loss"] < summary["first_train_mlm_loss"]  # it learns something
    vocab = (run_folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    single = [t for t in vocab[5:] if len(t) == 1]  # the alphabet: characters that stand alone
    assert 40 <= len(single) <= 60  # --limit-alphabet 60 (the news text has more distinct characters)


@pytest.mark.slow  # run_folder pretrains a model
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


@pytest.mark.slow  # run_folder pretrains a model
def test_fill_mask_command(run_folder, capsys):
    assert main(["fill-mask", "--model", str(run_folder), "--top-k", "3", "the [MASK] said"]) == 0
    out = capsys.readouterr().out
    assert "[MASK] 1:" in out and out.count("(0.") + out.count("(1.") == 3


@pytest.mark.slow  # run_folder pretrains a model
def test_resume_continues_from_the_latest_checkpoint(run_folder, small_corpus):
    code = main(["pretrain", "--corpus", str(small_corpus), "--preset", "tiny", "--max-seq-length", "64",
                 "--batch-size", "8", "--steps", "15", "--log-every", "3", "--heldout", "10",
                 "--max-eval-examples", "64", "--output", str(run_folder), "--resume"])
    assert code == 0
    steps = [json.loads(x)["step"] for x in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 15 and steps.count(12) >= 1
    assert json.loads((run_folder / "summary.json").read_text())["steps"] == 15


@pytest.mark.parametrize("case", ["empty", "missing", "undecodable", "tiny_vocab", "alphabet_too_big", "bad_alphabet",
                                  "long_seq", "bad_dropout", "not_empty"])
def test_bad_input_one_line_exit_2_no_run_folder(case, tmp_path, small_corpus, capsys):
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
    code = main(["pretrain", "--corpus", str(corpus), "--steps", "2", "--output", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("bertlab pretrain: error: ") and expect in err, err
    if case != "not_empty":
        assert not out.exists()
    else:
        assert [p.name for p in out.iterdir()] == ["something"]


def test_pretrain_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ["--corpus", "--preset", "--vocab-size", "--max-seq-length", "--batch-size", "--steps", "--output",
                 "--resume", "--tokenizer", "--masked-lm-prob", "--whole-word-mask", "--save-every", "--dropout", "--limit-alphabet"]:
        assert flag in out
