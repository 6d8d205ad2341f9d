"""Long documents (issue 20): head-tail cuts, `--long-text auto` chosen on the training texts and saved
for evaluate / predict, micro-batches that bound memory, the peak reported, and a lean run folder."""

import json

import pytest
import torch

from bertlab import WordPieceTokenizer
from bertlab.cli import main
from bertlab.config import BertConfig
from bertlab.encoding import FEW_LONG, choose_long_text, encode_texts, encoding_settings, text_lengths
from bertlab.finetune import ACTIVATION_BUDGET, activation_bytes, micro_batches

from .test_classification_data import write_table


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer.from_pretrained("minilm-l6")


def numbered(n):
    return " ".join(f"w{i}" for i in range(n))


def test_head_tail_keeps_the_first_quarter_and_the_last_three_quarters(tok):
    doc, short = numbered(400), "a short one"
    ids = tok.encode_batch_ids([doc])[0]
    assert len(ids) > 126
    enc = encode_texts(tok, [doc, short], max_seq_length=128, long_text="head-tail")
    kept = enc.input_ids[0][1:-1]
    assert len(enc.input_ids[0]) == 128 and enc.input_ids[0][0] == tok.cls_token_id
    assert enc.input_ids[0][-1] == tok.sep_token_id
    assert kept == ids[:31] + ids[-95:]  # int(126 * 0.25) = 31 head tokens, 95 tail tokens
    assert enc.truncated == 1 and enc.doc == [0, 1] and enc.n_docs == 2
    # a text that fits is untouched, and equals truncation's encoding of it
    assert enc.input_ids[1] == encode_texts(tok, [short], max_seq_length=128).input_ids[0]


def test_head_tail_with_a_second_segment(tok):
    a, b = numbered(300), numbered(200)
    enc = encode_texts(tok, [a], [b], max_seq_length=64, long_text="head-tail")
    ids_a, ids_b = tok.encode_batch_ids([a, b])
    row, types = enc.input_ids[0], enc.token_type_ids[0]
    b_kept = ids_b[: (64 - 3) // 2]  # the pair is capped at half the length, as with chunk
    room = 64 - 2 - len(b_kept) - 1
    head = int(room * 0.25)
    assert len(row) == 64 and row[-len(b_kept) - 1:] == b_kept + [tok.sep_token_id]
    assert row[1: 1 + room] == ids_a[:head] + ids_a[-(room - head):]
    assert types == [0] * (room + 2) + [1] * (len(b_kept) + 1)


def test_auto_truncates_when_few_texts_are_long_and_cuts_head_tail_otherwise(tok):
    assert choose_long_text([10] * 100, 128) == ("truncate", "long texts: none of the 100 training texts exceeds "
                                                             "128 tokens")
    few = [10] * 95 + [300] * 5
    strategy, line = choose_long_text(few, 128)
    assert strategy == "truncate" and line.startswith("long texts: 5 of 100 training texts (5%) exceed 128 tokens")
    assert "truncating them" in line
    many = [10] * 38 + [910] * 62
    strategy, line = choose_long_text(many, 128)
    assert strategy == "head-tail"
    assert line == ("long texts: 62 of 100 training texts (62%) exceed 128 tokens (median of those 910): using "
                    "head-tail, 128 tokens (the first 31 and the last 95 text tokens; --long-text auto)")
    assert "(under 1%)" in choose_long_text([10] * 999 + [300], 128)[1]
    edge = [10] * 90 + [200] * 10  # exactly FEW_LONG
    assert FEW_LONG == 0.10 and choose_long_text(edge, 128)[0] == "truncate"
    assert choose_long_text([10] * 89 + [200] * 11, 128)[0] == "head-tail"
    # lengths count [CLS] and [SEP] (and the pair's [SEP])
    assert text_lengths(tok, ["hello world"]) == [4]
    assert text_lengths(tok, ["hello world"], ["again"]) == [6]


MINILM = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536)
TINY = BertConfig.from_preset("tiny", vocab_size=1000)


def test_micro_batches_bound_activations_on_a_cpu_only():
    # MiniLM, 32 texts of 128 tokens: about 1.1 GB of saved activations -> two micro-batches of 16
    assert 32 * activation_bytes(MINILM, 128) > ACTIVATION_BUDGET >= 16 * activation_bytes(MINILM, 128)
    assert micro_batches(32, 1, 128, MINILM, cuda=False) == (16, 2)
    assert micro_batches(32, 3, 128, MINILM, cuda=False) == (16, 6)  # the user's accumulation is kept
    assert micro_batches(32, 1, 512, MINILM, cuda=False) == (2, 16)
    assert micro_batches(32, 1, 128, MINILM, cuda=True) == (32, 1)  # a GPU keeps the batch as given
    assert micro_batches(16, 1, 64, MINILM, cuda=False) == (16, 1)  # small enough already
    assert micro_batches(32, 1, 128, TINY, cuda=False) == (32, 1)
    # the micro-batch always divides the batch, so each step sees exactly batch_size examples
    for batch in range(1, 65):
        micro, accum = micro_batches(batch, 1, 512, MINILM, cuda=False)
        assert micro * accum == batch and micro * activation_bytes(MINILM, 512) <= max(
            ACTIVATION_BUDGET, activation_bytes(MINILM, 512))


def test_accumulated_micro_batches_give_the_full_batch_gradient():
    from bertlab.model import BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig.from_preset("tiny", vocab_size=200, num_labels=2, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(cfg)
    x = torch.randint(5, 200, (8, 12))
    y = torch.randint(0, 2, (8,))
    model(input_ids=x, labels=y).loss.backward()
    full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for part in (slice(0, 4), slice(4, 8)):
        (model(input_ids=x[part], labels=y[part]).loss / 2).backward()
    for g, p in zip(full, model.parameters()):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A tiny model fine-tuned for 4 steps on texts that are mostly longer than 32 tokens (auto)."""
    folder = tmp_path_factory.mktemp("long")
    rows = [(f"review {i} : " + (("great fun , " if i % 2 else "awful bore , ") * (3 + 20 * (i % 4 > 0))).strip(),
             "pos" if i % 2 else "neg") for i in range(48)]
    data = write_table(folder / "long.csv", ["review", "sentiment"], rows)
    out = folder / "run"
    assert main(["finetune", "--from-scratch", "--preset", "tiny", "--tokenizer", "minilm-l6", "--data", str(data),
                 "--max-seq-length", "32", "--max-steps", "4", "--batch-size", "8", "--eval-every", "2",
                 "--output", str(out)]) == 0
    return folder, data, out


@pytest.mark.slow  # fine-tunes (a tiny model, seconds)
def test_auto_is_resolved_saved_and_used_by_evaluate_and_predict(long_run, capsys):
    folder, data, out = long_run
    args = json.loads((out / "args.json").read_text())
    assert args["long_text"] == "head-tail" and args["long_text_given"] == "auto"
    # trained on 32-token cuts, read at all 512 positions by evaluate and predict
    assert args["max_seq_length"] == 32
    assert args["prediction"] == {"max_seq_length": 512, "long_text": "head-tail", "stride": 32}
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["long_text"] == "head-tail" and summary["status"] == "finished"
    assert summary["prediction_max_seq_length"] == 512
    assert 0 <= summary["validation_at_prediction"]["accuracy"] <= 1
    assert encoding_settings(out) == {"max_seq_length": 512, "long_text": "head-tail", "stride": 32}
    assert encoding_settings(out, long_text="chunk")["long_text"] == "chunk"  # a flag still wins
    assert encoding_settings(out, max_seq_length=64)["max_seq_length"] == 64
    assert main(["evaluate", "--model", str(out), "--data", str(data), "--output", str(folder / "eval")]) == 0
    settings = json.loads((folder / "eval" / "metrics.json").read_text())["settings"]
    assert settings["long_text"] == "head-tail" and settings["max_seq_length"] == 512
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "great fun , " * 40]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.slow
def test_a_finished_run_is_lean_and_reports_its_peak_memory(long_run, tmp_path, capsys):
    _, data, out = long_run
    names = {p.name for p in out.iterdir()}
    assert "checkpoints" not in names and "best" not in names
    model_bytes = (out / "model.safetensors").stat().st_size
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total <= 2.5 * model_bytes, (total, model_bytes)
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["peak_memory_mb"] > 100  # this process has imported torch, at the least
    # a finished run has nothing to resume: one clear line, nothing touched
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["finetune", "--from-scratch", "--preset", "tiny", "--tokenizer", "minilm-l6", "--data", str(data),
                 "--max-steps", "4", "--output", str(out), "--resume"]) == 2
    assert "has finished" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # --keep-checkpoints N keeps the N newest
    kept = tmp_path / "kept"
    assert main(["finetune", "--from-scratch", "--preset", "tiny", "--tokenizer", "minilm-l6", "--data", str(data),
                 "--max-seq-length", "32", "--max-steps", "4", "--batch-size", "8", "--eval-every", "1",
                 "--keep-checkpoints", "2", "--output", str(kept)]) == 0
    assert sorted(p.name for p in (kept / "checkpoints").glob("step-*")) == ["step-00000003", "step-00000004"]
    out_line = capsys.readouterr().out
    assert "peak memory" in out_line and "head-tail" in out_line
    assert "evaluate and predict read 512 tokens" in out_line and "validation accuracy of the best model at 512" in out_line


def test_prediction_length_is_the_full_model_for_head_tail_only():
    from bertlab.encoding import prediction_length

    assert prediction_length("head-tail", 128, 512) == 512
    assert prediction_length("head-tail", 128, 1024) == 512  # BERT's 512 at most
    assert prediction_length("head-tail", 128, 64) == 128  # never shorter than the training length
    assert prediction_length("truncate", 128, 512) == 128


@pytest.mark.slow
def test_an_explicit_strategy_counts_the_texts_it_cuts(long_run, tmp_path, capsys):
    _, data, _ = long_run
    for strategy, says in (("truncate", "lose their end (--long-text head-tail or chunk keep it)"),
                           ("head-tail", "lose their middle")):
        out = tmp_path / strategy
        assert main(["finetune", "--from-scratch", "--preset", "tiny", "--tokenizer", "minilm-l6", "--data", str(data),
                     "--max-seq-length", "32", "--max-steps", "1", "--batch-size", "8", "--long-text", strategy,
                     "--output", str(out)]) == 0
        log = capsys.readouterr().out
        assert f"{strategy}: 32 of 44 training texts (72.7%) are longer than --max-seq-length 32 and {says}" in log
        assert "long texts:" not in log  # auto's line only with auto
        saved = json.loads((out / "args.json").read_text())
        assert saved["prediction"] == {"max_seq_length": 32, "long_text": strategy, "stride": 32}
