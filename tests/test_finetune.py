"""`bertlab finetune` and `bertlab predict`: the run folder, the best model, exact resume, parity with
transformers' pipeline, long texts, learning for real, and one-line errors with no half-written folder."""

import io
import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from bertlab.cli import main
from bertlab.data import load_classification
from bertlab.encoding import encode_texts
from bertlab.finetune import FinetuneArgs, run_finetune, subset_indices
from bertlab.metrics import validation_metrics
from bertlab.predict import load_classifier, predict_proba

from .test_classification_data import BAD_CASES, make_bad_input, write_table

# A tiny BERT from scratch (with a 1,000-piece vocabulary) on 160 Rotten Tomatoes snippets: seconds.
TINY = ["--from-scratch", "--preset", "tiny", "--data", "rotten_tomatoes", "--max-train-examples", "160",
        "--max-eval-examples", "64", "--max-steps", "12", "--batch-size", "16", "--eval-every", "4",
        "--save-every", "4", "--seed", "0"]
TINY_ARGS = dict(from_scratch=True, preset="tiny", data="rotten_tomatoes", max_train_examples=160,
                 max_eval_examples=64, max_steps=12, batch_size=16, eval_every=4, save_every=4, seed=0)


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory):
    """A WordPiece vocabulary of 1,000 pieces trained on Rotten Tomatoes training snippets."""
    from bertlab import train_wordpiece

    texts = load_classification("rotten_tomatoes").splits["train"].texts[:3000]
    return str(train_wordpiece(texts, vocab_size=1000).save(tmp_path_factory.mktemp("tokenizer")))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_tokenizer):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["finetune", *TINY, "--tokenizer", small_tokenizer, "--keep-checkpoints", "1", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    """The real MiniLM encoder fine-tuned for 30 steps on 400 Rotten Tomatoes snippets."""
    out = tmp_path_factory.mktemp("runs") / "minilm"
    assert main(["finetune", "--model", "minilm-l6", "--data", "rotten_tomatoes", "--max-train-examples", "400",
                 "--max-eval-examples", "160", "--max-steps", "30", "--batch-size", "16", "--learning-rate", "3e-4",
                 "--max-seq-length", "64", "--eval-every", "15", "--save-every", "1000", "--output", str(out)]) == 0
    return out


def records(folder):
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


def validation_slice(n=64, seed=0):
    val = load_classification("rotten_tomatoes").splits["validation"]
    return val.select(subset_indices(val.ids, n, seed, "validation"))


# --- the run folder ----------------------------------------------------------------------------


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_run_folder_is_a_hugging_face_classifier_holding_the_best_model(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "metrics.jsonl", "learning_curve.png", "finetune_summary.json",
            "args.json"} <= names
    # --keep-checkpoints 1: the last checkpoint stays beside the best model (by default none does)
    assert [p.name for p in (tiny_run / "checkpoints").glob("step-*")] == ["step-00000012"]
    assert "best" not in names  # moved to the top of the folder
    assert (tiny_run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["id2label"] == {"0": "rotten", "1": "fresh"} and config["label2id"] == {"rotten": 0, "fresh": 1}
    assert config["architectures"] == ["BertForSequenceClassification"] and config["num_hidden_layers"] == 2

    evals = [r for r in records(tiny_run) if "eval_accuracy" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    for r in evals:
        assert 0 <= r["eval_accuracy"] <= 1 and 0 <= r["eval_macro_f1"] <= 1 and r["eval_loss"] > 0
    summary = json.loads((tiny_run / "finetune_summary.json").read_text())
    assert summary["steps"] == 12 and summary["examples"]["train"] == 160 and summary["examples"]["validation"] == 64
    assert summary["train_seconds"] > 0 and summary["label_names"] == ["rotten", "fresh"]
    best = max(evals, key=lambda r: r["eval_accuracy"])  # first of equals: strictly better replaces
    assert summary["best_step"] == best["step"] and summary["validation"]["accuracy"] == best["eval_accuracy"]

    # The folder's model is the best one: its accuracy on the same 64 texts is the best evaluation's.
    model, tokenizer = load_classifier(str(tiny_run))
    val = validation_slice()
    probs = predict_proba(model, tokenizer, val.texts)
    accuracy = (probs.argmax(-1) == torch.tensor(val.labels)).float().mean().item()
    assert accuracy == pytest.approx(best["eval_accuracy"], abs=1e-6)
    last = load_file(str(tiny_run / "checkpoints" / "step-00000012" / "model.safetensors"))
    same_as_last = all(torch.equal(v, last[k]) for k, v in load_file(str(tiny_run / "model.safetensors")).items())
    assert same_as_last == (best["step"] == 12)


def test_early_stopping_after_patience_evaluations_without_improvement(small_tokenizer, tmp_path):
    # A learning rate of 1e-12 leaves the model as it was: no evaluation after the first is better.
    args = {**TINY_ARGS, "max_steps": 40, "eval_every": 2, "save_every": 100}
    summary = run_finetune(FinetuneArgs(output=str(tmp_path / "run"), tokenizer=small_tokenizer, patience=2,
                                        learning_rate=1e-12, **args), log=lambda m: None)
    assert summary["stopped_early"] and summary["best_step"] == 2 and summary["steps"] == 6
    assert [r["step"] for r in records(tmp_path / "run") if "eval_accuracy" in r] == [2, 4, 6]


class Interrupt(Exception):
    pass


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_resume_after_interruption_ends_like_the_uninterrupted_run(tiny_run, small_tokenizer, tmp_path):
    out = tmp_path / "interrupted"

    def stop_at_6(trainer, step, record):
        if step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_finetune(FinetuneArgs(output=str(out), tokenizer=small_tokenizer, **TINY_ARGS), log=lambda m: None,
                     callbacks=[stop_at_6])
    assert (out / "checkpoints" / "step-00000004").is_dir() and not (out / "model.safetensors").exists()
    # the tokenizer comes from the run folder now; the model's recipe from the same flags
    assert main(["finetune", *TINY, "--tokenizer", small_tokenizer, "--output", str(out), "--resume"]) == 0

    a, b = load_file(str(tiny_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    assert strip(records(out)) == strip(records(tiny_run))
    s1, s2 = (json.loads((d / "finetune_summary.json").read_text()) for d in (tiny_run, out))
    assert s1["validation"] == s2["validation"] and s1["initial_validation"] == s2["initial_validation"]


# --- prediction ----------------------------------------------------------------------------------


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_predict_proba_keeps_input_order_and_sums_to_one(tiny_run):
    model, tokenizer = load_classifier(str(tiny_run))
    texts = ["short", "a much longer text " * 20, "medium length text here", "x y"]
    together = predict_proba(model, tokenizer, texts, batch_size=2)
    one_by_one = torch.cat([predict_proba(model, tokenizer, [t]) for t in texts])
    assert together.dtype == torch.float32 and together.shape == (4, 2)
    torch.testing.assert_close(together, one_by_one, atol=1e-6, rtol=0)
    torch.testing.assert_close(together.sum(-1), torch.ones(4))


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_predict_cli_prints_the_numbers_of_predict_proba(tiny_run, tmp_path, capsys, monkeypatch):
    texts = ["a gorgeous, witty, seductive movie", "dull, lifeless and far too long", "中文也可以"]
    model, tokenizer = load_classifier(str(tiny_run))
    expected = predict_proba(model, tokenizer, texts).tolist()

    def check(lines):
        rows = [json.loads(x) for x in lines.strip().splitlines()]
        assert [r["text"] for r in rows] == texts
        for row, p in zip(rows, expected):
            assert row["probabilities"] == {"rotten": p[0], "fresh": p[1]}  # exactly the same floats
            assert row["label"] == ("fresh" if p[1] > p[0] else "rotten")

    assert main(["predict", "--model", str(tiny_run), *texts]) == 0
    check(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts) + "\n"))
    assert main(["predict", "--model", str(tiny_run), "-"]) == 0
    check(capsys.readouterr().out)
    table = write_table(tmp_path / "t.csv", ["id", "Body"], [(i, t) for i, t in enumerate(texts)])
    assert main(["predict", "--model", str(tiny_run), "--file", str(table), "--text-column", "Body"]) == 0
    check(capsys.readouterr().out)


@pytest.mark.slow  # minilm_run fine-tunes the real MiniLM
def test_transformers_pipeline_gives_the_same_probabilities(minilm_run):
    import transformers

    model, tokenizer = load_classifier(str(minilm_run))
    texts = ["a gorgeous, witty, seductive movie.", "the plot is a mess and the jokes fall flat.",
             "an uneven but often moving film", "Boring."]
    ours = predict_proba(model, tokenizer, texts)
    pipe = transformers.pipeline("text-classification", model=str(minilm_run), top_k=None, device="cpu")
    theirs = torch.tensor([[{d["label"]: d["score"] for d in row}[name] for name in ("rotten", "fresh")]
                           for row in pipe(texts)])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    pair = predict_proba(model, tokenizer, ["first part"], ["second part"])
    theirs_pair = pipe({"text": "first part", "text_pair": "second part"})
    torch.testing.assert_close(pair[0], torch.tensor([{d["label"]: d["score"] for d in theirs_pair}[n]
                                                      for n in ("rotten", "fresh")]), atol=1e-5, rtol=0)


@pytest.mark.slow  # minilm_run fine-tunes the real MiniLM
def test_fine_tuning_learns(minilm_run):
    summary = json.loads((minilm_run / "finetune_summary.json").read_text())
    before, after = summary["initial_validation"]["accuracy"], summary["validation"]["accuracy"]
    # measured: 0.556 -> 0.731, macro F1 0.726, the same under ATEN_CPU_CAPABILITY=default (earlier code,
    # seeds 1, 2: 0.419 -> 0.762, 0.587 -> 0.769). 160 examples: each is 0.006, so the bounds leave
    # 10 or more examples of room for another BLAS or seed.
    assert after > before + 0.1 and after > 0.65, (before, after)
    assert summary["validation"]["macro_f1"] > 0.6


# --- long texts ----------------------------------------------------------------------------------


def long_document(words=3000):
    good = "a wonderful , moving and beautifully acted film that i loved ."
    bad = "a dull , tedious and badly written mess that i hated ."
    text = " ".join([good] * 10 + [bad] * (words // 11))
    return " ".join(text.split()[:words])


def test_chunk_windows_overlap_by_stride_and_cover_the_document():
    from bertlab import WordPieceTokenizer

    tok = WordPieceTokenizer.from_pretrained("minilm-l6")
    doc = long_document()
    assert len(doc.split()) == 3000
    ids = tok.encode_batch_ids([doc])[0]
    chunked = encode_texts(tok, [doc, "short one"], max_seq_length=128, long_text="chunk", stride=32)
    truncated = encode_texts(tok, [doc, "short one"], max_seq_length=128)
    windows = [w[1:-1] for w, d in zip(chunked.input_ids, chunked.doc) if d == 0]
    assert len(windows) == math.ceil((len(ids) - 126) / (126 - 32)) + 1
    assert all(len(w) <= 126 for w in windows)
    for left, right in zip(windows, windows[1:]):
        assert left[-32:] == right[:32]
    assert windows[0] == ids[:126] and windows[-1][-1] == ids[-1]
    assert chunked.input_ids[0] == truncated.input_ids[0]  # the first window is the truncated text
    assert chunked.input_ids[-1] == truncated.input_ids[-1] and chunked.doc[-1] == 1


@pytest.mark.slow  # minilm_run fine-tunes the real MiniLM
def test_long_document_chunked_differs_from_truncated_and_is_valid(minilm_run):
    model, tokenizer = load_classifier(str(minilm_run))
    doc = long_document()
    truncated = predict_proba(model, tokenizer, [doc])
    chunked = predict_proba(model, tokenizer, [doc], long_text="chunk", stride=32)
    for p in (truncated, chunked):
        assert p.shape == (1, 2) and torch.isfinite(p).all() and abs(p.sum().item() - 1) < 1e-5
    # What holds by construction, whatever the weights and the BLAS: truncation is the first window alone,
    # and chunking averages the logits of every window, each window run on its own here (no padding).
    encoded = encode_texts(tokenizer, [doc], long_text="chunk", stride=32)
    with torch.no_grad():
        window_logits = torch.cat([model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits
                                   for ids, types in zip(encoded.input_ids, encoded.token_type_ids)])
    assert len(window_logits) > 20
    torch.testing.assert_close(truncated[0], window_logits[0].softmax(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked[0], window_logits.mean(0).softmax(-1), atol=1e-5, rtol=0)
    # The document opens with 10 glowing sentences, then turns scathing for 2,900 words: truncation reads
    # only the praise, the averaged windows mostly the rest. The 30-step model is weak, so the gap in
    # P(fresh) is small, so only its sign is asserted (measured: 0.535 truncated vs 0.485 chunked, a gap of
    # 0.049, the same to 6 decimals under ATEN_CPU_CAPABILITY=default).
    assert truncated[0, 1] > chunked[0, 1], (truncated, chunked)


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_finetune_with_chunks_from_a_model_folder(tiny_run, tmp_path):
    rows = [(("great fun " if i % 2 else "awful bore ") * (5 + 40 * (i % 3)), "pos" if i % 2 else "neg")
            for i in range(40)]
    data = write_table(tmp_path / "long.csv", ["review", "sentiment"], rows)
    out = tmp_path / "chunked"
    assert main(["finetune", "--model", str(tiny_run), "--data", str(data), "--long-text", "chunk",
                 "--max-seq-length", "32", "--stride", "8", "--max-steps", "3", "--batch-size", "8",
                 "--output", str(out)]) == 0
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["long_text"] == "chunk" and summary["train_windows"] > summary["examples"]["train"]
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}


def test_start_from_a_pretraining_folder_or_from_scratch(small_tokenizer, tmp_path):
    from bertlab import BertConfig, BertForPreTraining, WordPieceTokenizer
    from bertlab.finetune import build_model

    tok = WordPieceTokenizer.from_pretrained(small_tokenizer)
    folder = tmp_path / "pretrained"
    pre = BertForPreTraining(BertConfig.from_preset("tiny", vocab_size=tok.vocab_size))
    pre.save_pretrained(folder)  # what `bertlab pretrain` leaves: encoder + MLM/NSP heads
    tok.save(folder)
    labels = ["neg", "neu", "pos"]
    model = build_model(FinetuneArgs(output="x", model=str(folder)), labels, tok)
    encoder = {k: v for k, v in pre.state_dict().items() if k.startswith("bert.")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in encoder.items())
    assert model.config.id2label == {0: "neg", 1: "neu", 2: "pos"} and model.classifier.out_features == 3
    scratch = build_model(FinetuneArgs(output="x", model=str(folder), from_scratch=True), labels, tok)
    assert scratch.config.num_hidden_layers == 2 and scratch.config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert not torch.equal(scratch.bert.embeddings.word_embeddings.weight, pre.bert.embeddings.word_embeddings.weight)
    for from_scratch in (False, True):  # --dropout overrides the checkpoint's dropout either way
        m = build_model(FinetuneArgs(output="x", model=str(folder), from_scratch=from_scratch, dropout=0.0), labels, tok)
        assert m.config.hidden_dropout_prob == m.config.attention_probs_dropout_prob == 0.0
        assert m.dropout.p == 0.0 and all(d.p == 0.0 for d in m.modules() if isinstance(d, torch.nn.Dropout))


# --- metrics ---------------------------------------------------------------------------------------


def test_validation_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, log_loss

    g = torch.Generator().manual_seed(0)
    for k in (2, 5, 20):
        y = torch.randint(0, k, (300,), generator=g)
        p = torch.where(torch.rand(300, generator=g) < 0.6, y, torch.randint(0, k, (300,), generator=g))
        logits = 4 * F.one_hot(p, k).float() + torch.rand(300, k, generator=g)  # argmax = p
        m = validation_metrics(y, logits)
        assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-12)
        assert m["accuracy"] == pytest.approx(float((p == y).double().mean()), abs=1e-12)
        assert m["loss"] == pytest.approx(log_loss(y, logits.double().softmax(-1), labels=list(range(k))), rel=1e-9)
    y, p = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 0])  # a class never predicted
    m = validation_metrics(y, F.one_hot(p, 3).float())
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_through_the_cli_one_line_exit_2_no_folder(case, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    path, kwargs, expected = make_bad_input(case, tmp_path / "data")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()]
    out = tmp_path / "run"
    code = main(["finetune", "--model", "minilm-l6", "--data", str(path), *flags, "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("bertlab finetune: error: "), err
    for fragment in expected:
        assert fragment in err
    assert not out.exists()


def _other_case(case, tmp_path):
    out = tmp_path / "run"
    base = ["finetune", "--data", "rotten_tomatoes", "--output", str(out)]
    if case == "not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("x")
        return base + ["--model", "minilm-l6"], "not empty"
    if case == "too_long":
        return base + ["--model", "minilm-l6", "--max-seq-length", "1024"], "512 positions"
    if case == "stride":
        return base + ["--model", "minilm-l6", "--long-text", "chunk", "--max-seq-length", "16", "--stride", "14"], "--stride 14"
    if case == "no_tokenizer":
        return base + ["--from-scratch", "--preset", "tiny"], "--tokenizer"
    if case == "no_model":
        return base + ["--model", str(tmp_path / "missing-model")], "missing-model"
    if case == "bad_fraction":
        return base + ["--model", "minilm-l6", "--validation-split", "1.5"], "--validation-split"
    if case == "resume_nothing":
        return base + ["--model", "minilm-l6", "--resume"], "no fine-tuning run to resume"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["not_empty", "too_long", "stride", "no_tokenizer", "no_model", "bad_fraction",
                                  "resume_nothing"])
def test_bad_arguments_one_line_exit_2_no_folder(case, tmp_path, capsys):
    argv, expected = _other_case(case, tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    out = tmp_path / "run"
    if case == "not_empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()


def test_finetune_and_predict_errors_are_one_line_exit_2(tmp_path, capsys):
    # In-process; the real process's exit code is checked once, in test_tokenizer_and_cli.py.
    path, _, _ = make_bad_input("ragged_csv", tmp_path)
    assert main(["finetune", "--model", "minilm-l6", "--data", str(path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 3" in err and err.startswith("bertlab finetune: error: ")
    assert not (tmp_path / "run").exists()
    assert main(["predict", "--model", str(tmp_path / "nope"), "hi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bertlab predict: error: ")


@pytest.mark.slow  # tiny_run fine-tunes a model
def test_predict_errors(tiny_run, tmp_path, capsys):
    assert main(["predict", "--model", "minilm-l6", "some text"]) == 2  # an encoder without a trained head
    assert "classification head" in capsys.readouterr().err
    assert main(["predict", "--model", str(tiny_run)]) == 2
    assert "no texts" in capsys.readouterr().err
    assert main(["predict", "--model", str(tiny_run), "ok", "  "]) == 2
    assert "text 2: empty text" in capsys.readouterr().err
    bad = tmp_path / "texts.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    assert main(["predict", "--model", str(tiny_run), "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "texts.txt: line 2" in err


def test_finetune_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["finetune", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--model", "--data", "--output", "--epochs", "--max-steps", "--batch-size", "--learning-rate",
                 "--max-seq-length", "--seed", "--text-column", "--text-pair-column", "--label-column",
                 "--validation-split", "--resume", "--data-dir", "--eval-every", "--patience", "--warmup-ratio",
                 "--from-scratch", "--preset", "--tokenizer", "--long-text", "--stride", "--max-train-examples",
                 "--grad-accum-steps", "--amp"]:
        assert flag in text, flag
