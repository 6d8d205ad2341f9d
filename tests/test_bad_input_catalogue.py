"""A catalogue of bad and hostile invocations of every `bertlab` command, one table.

Each case runs `bertlab.cli.main` in-process and must end with exit code 2 and exactly one line on
stderr, `bertlab COMMAND: error: ...`, with no traceback; where the fault is in a data file, the line
names the file and the line (or row). And nothing of the user's changes: every file and folder under
the case's folder (and the shared model folders) is the same before and after, byte for byte and
mode for mode, and nothing new appears, so no half-written --output either.

A case is data: the files it writes into its folder (`files`, name -> text or bytes, a name ending
in "/" is an empty folder), the argument list with {tmp}, {clf} and {mlm} filled in, and the
fragments the error line must hold. `where` is "FILE: line N" (FILE under the case's folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from bertlab.cli import main

# --- the shared models: a tiny classifier folder and a tiny pretraining (MLM + NSP) folder ----------


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """{"clf": a fine-tuned-classifier folder (labels neg, pos; 64 positions), "mlm": a pretraining
    folder}, untrained (nothing here needs good predictions): built in well under a second."""
    import torch

    from bertlab import BertConfig, BertForPreTraining, BertForSequenceClassification, train_wordpiece

    root = tmp_path_factory.mktemp("catalogue-models")
    texts = [f"the film number {i} was {w} and the story {v}" for i in range(30)
             for w, v in (("great fun", "moved me"), ("dull", "dragged"))]
    tokenizer = train_wordpiece(texts, vocab_size=120, min_frequency=1)
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, hidden_size=16,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                        id2label={0: "neg", 1: "pos"})
    torch.manual_seed(0)
    for name, cls in (("clf", BertForSequenceClassification), ("mlm", BertForPreTraining)):
        cls(config).save_pretrained(root / name)
        tokenizer.save(root / name)
    (root / "clf" / "args.json").write_text(json.dumps({"max_seq_length": 32, "long_text": "truncate", "stride": 8}))
    return {"root": root, "clf": root / "clf", "mlm": root / "mlm"}


# --- data ----------------------------------------------------------------------------------------


def rows(n: int = 20, sep: str = ",", header: str | None = None, bad: dict[int, str] | None = None) -> str:
    """A header and n good rows (labels neg, pos alternating); `bad` replaces lines (1 = the header)."""
    lines = [header or f"text{sep}label"] + [
        f"review {i} was {'great fun' if i % 2 else 'dull and slow'}{sep}{'pos' if i % 2 else 'neg'}" for i in range(n)]
    for number, text in (bad or {}).items():
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


def rows_bytes(bad_line: int, raw: bytes) -> bytes:
    """rows() as UTF-8 bytes, line `bad_line` replaced by `raw` (bytes that need not be UTF-8)."""
    lines = rows().encode("utf-8").split(b"\n")
    lines[bad_line - 1] = raw
    return b"\n".join(lines)


def jsonl(n: int = 20) -> list[str]:
    return [json.dumps({"text": f"review {i} was {'great' if i % 2 else 'dull'}", "label": "pos" if i % 2 else "neg"})
            for i in range(n)]


GOOD = rows()
GOOD_FOLDER = {"data/train.csv": GOOD, "data/test.csv": rows(8)}
CORPUS = "\n\n".join(f"Document {d} opens here. It goes on a while.\nAnother line of document {d}." for d in range(6))


# --- preparations that are not plain files --------------------------------------------------------


def copy_model(name: str, to: str, damage: Callable[[Path], None] = lambda folder: None):
    def prepare(tmp: Path, models: dict[str, Path]) -> None:
        shutil.copytree(models[name], tmp / to)
        damage(tmp / to)
    return prepare


def not_safetensors(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"PK\x03\x04 this is a zip file, not safetensors" * 10)


def with_user_folder(name: str) -> Callable[[Path], None]:
    """A folder of the user's, with a file, where a command would write its output by default."""
    def damage(folder: Path) -> None:
        (folder / name).mkdir()
        (folder / name / "draft.md").write_text("mine")
    return damage


def as_finetune_run(folder: Path) -> None:
    """What `bertlab finetune` leaves (its args.json has no bertlab_command: run folders never had one)."""
    (folder / "args.json").write_text(json.dumps({"model": "minilm-l6", "label_names": ["neg", "pos"]}))
    (folder / "metrics.jsonl").write_text('{"step": 4, "eval_accuracy": 0.5}\n')
    (folder / "finetune_summary.json").write_text('{"steps": 4}\n')
    (folder / "checkpoints" / "step-00000004").mkdir(parents=True)
    (folder / "checkpoints" / "latest").write_text("step-00000004\n")


def as_pretrain_run(folder: Path) -> None:
    (folder / "args.json").write_text(json.dumps({"corpus": ["news"], "output": str(folder)}))
    (folder / "summary.json").write_text('{"steps": 100}\n')
    (folder / "metrics.jsonl").write_text('{"step": 100, "train_mlm_loss": 4.2}\n')


def vocab_only(tmp: Path, models: dict[str, Path]) -> None:
    """A folder with a tokenizer but no config.json (or weights): not a model folder."""
    (tmp / "half-model").mkdir()
    shutil.copy(models["clf"] / "vocab.txt", tmp / "half-model" / "vocab.txt")


def read_only_parent(tmp: Path, models: dict[str, Path]) -> None:
    (tmp / "locked").mkdir()
    (tmp / "locked" / "notes.txt").write_text("mine")
    (tmp / "locked").chmod(0o500)


# --- the catalogue ---------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    argv: list[str]  # {tmp}: the case's folder; {clf}, {mlm}: the shared models
    expect: list[str]  # fragments of the error line ({tmp} filled in)
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    where: str | None = None  # "train.csv: line 3": the data file (under {tmp}) and the line or row named
    prepare: Callable[[Path, dict[str, Path]], None] | None = None
    needs_non_root: bool = False
    xfail: str | None = None


FT = ["finetune", "--model", "{clf}", "--output", "{tmp}/run", "--max-steps", "1", "--batch-size", "4"]
EV = ["evaluate", "--model", "{clf}", "--output", "{tmp}/eval", "--bootstrap", "0"]
BL = ["baseline", "--output", "{tmp}/baselines", "--bootstrap", "0", "--C", "1"]
PR = ["predict", "--model", "{clf}"]
PT = ["pretrain", "--corpus", "{tmp}/corpus.txt", "--output", "{tmp}/run", "--steps", "1", "--batch-size", "2",
      "--vocab-size", "100"]
BENCH = ["bench", "--vocab-size", "100", "--seq-len", "8", "--batch-size", "2", "--steps", "1", "--rounds", "1"]

CASES = [
    # ---- finetune: data files
    Case("finetune-csv-unterminated-quote", FT + ["--data", "{tmp}/train.csv"], ["found 1"],
         {"train.csv": rows(bad={3: '"a quote that never closes, it swallows the rest,neg'})}, "train.csv: line 3"),
    Case("finetune-tsv-ragged-row", FT + ["--data", "{tmp}/reviews.tsv"], ["expected 2", "found 3"],
         {"reviews.tsv": rows(sep="\t", bad={6: "one\ttab too\tmany"})}, "reviews.tsv: line 6"),
    Case("finetune-tsv-row-without-tab", FT + ["--data", "{tmp}/reviews.tsv"], ["found 1"],
         {"reviews.tsv": rows(sep="\t", bad={4: "no tab in this row at all"})}, "reviews.tsv: line 4"),
    Case("finetune-not-utf8-at-line-5", FT + ["--data", "{tmp}/train.csv"], ["UTF-8"],
         {"train.csv": rows_bytes(5, b"caf\xe9 au lait in latin-1,pos")}, "train.csv: line 5"),
    Case("finetune-nul-byte-in-text", FT + ["--data", "{tmp}/train.csv"], ["NUL"],
         {"train.csv": rows(bad={7: "a broken\x00 export,pos"})}, "train.csv: line 7"),
    Case("finetune-empty-file", FT + ["--data", "{tmp}/train.csv"], ["{tmp}/train.csv", "empty"], {"train.csv": ""}),
    Case("finetune-header-only", FT + ["--data", "{tmp}/train.csv"], ["{tmp}/train.csv", "no data rows"],
         {"train.csv": "text,label\n"}),
    Case("finetune-missing-text-column", FT + ["--data", "{tmp}/train.csv", "--text-column", "body"],
         ["{tmp}/train.csv", "'body'", "--text-column"], {"train.csv": GOOD}),
    Case("finetune-undetectable-columns", FT + ["--data", "{tmp}/train.csv"], ["{tmp}/train.csv", "--text-column"],
         {"train.csv": rows(header="foo,bar")}),
    Case("finetune-duplicate-header-names", FT + ["--data", "{tmp}/train.csv"], ["repeated column", "text"],
         {"train.csv": rows(header="text,text")}, "train.csv: line 1"),
    Case("finetune-bad-json-line", FT + ["--data", "{tmp}/train.jsonl"], ["not valid JSON"],
         {"train.jsonl": "\n".join(jsonl()[:2] + ['{"text": "cut off", "label": '] + jsonl()[2:]) + "\n"},
         "train.jsonl: line 3"),
    Case("finetune-json-line-not-an-object", FT + ["--data", "{tmp}/train.jsonl"], ["expected a JSON object"],
         {"train.jsonl": "\n".join(jsonl()[:4] + ['["a list", "pos"]'] + jsonl()[4:]) + "\n"}, "train.jsonl: line 5"),
    Case("finetune-json-array-of-non-objects", FT + ["--data", "{tmp}/train.json"], ["expected a JSON object"],
         {"train.json": json.dumps([json.loads(x) for x in jsonl(3)] + [17, 18])}, "train.json: row 4"),
    Case("finetune-text-column-all-empty", FT + ["--data", "{tmp}/train.csv"], ["empty text"],
         {"train.csv": "text,label\n" + "".join(f",{'pos' if i % 2 else 'neg'}\n" for i in range(10))},
         "train.csv: line 2"),
    Case("finetune-empty-label-cell", FT + ["--data", "{tmp}/train.csv"], ["empty label"],
         {"train.csv": rows(bad={9: "a review without its label,"})}, "train.csv: line 9"),
    Case("finetune-single-class", FT + ["--data", "{tmp}/train.csv"], ["{tmp}/train.csv", "at least two classes"],
         {"train.csv": "text,label\n" + "".join(f"review {i},pos\n" for i in range(10))}),
    Case("finetune-unseen-label-in-dev-file", FT + ["--data", "{tmp}/data"], ["'meh'", "never occurs"],
         {"data/train.csv": GOOD, "data/dev.csv": rows(4, bad={3: "so so,meh"})}, "data/dev.csv: line 3"),
    Case("finetune-bad-parquet", FT + ["--data", "{tmp}/train.parquet"], ["{tmp}/train.parquet", "Parquet"],
         {"train.parquet": b"PAR1 but not really parquet"}),
    Case("finetune-unsupported-file-type", FT + ["--data", "{tmp}/train.xlsx"], ["train.xlsx", "unsupported"],
         {"train.xlsx": b"PK\x03\x04"}),
    Case("finetune-folder-without-train-file", FT + ["--data", "{tmp}/data"], ["{tmp}/data", "no train file"],
         {"data/test.csv": GOOD}),
    Case("finetune-data-does-not-exist", FT + ["--data", "{tmp}/nope.csv"], ["{tmp}/nope.csv", "no such file"]),
    Case("finetune-slice-holds-one-class", FT + ["--data", "{tmp}/train.csv", "--max-train-examples", "1"],
         ["--max-train-examples 1", "one class"], {"train.csv": GOOD}),
    # ---- finetune: flags
    Case("finetune-max-seq-length-4", FT + ["--data", "{tmp}/train.csv", "--max-seq-length", "4"],
         ["--max-seq-length 4"], {"train.csv": GOOD}),
    Case("finetune-max-seq-length-over-positions", FT + ["--data", "{tmp}/train.csv", "--max-seq-length", "128"],
         ["--max-seq-length 128", "64 positions"], {"train.csv": GOOD}),
    Case("finetune-batch-size-0", FT + ["--data", "{tmp}/train.csv", "--batch-size", "0"], ["--batch-size 0"],
         {"train.csv": GOOD}),
    Case("finetune-negative-learning-rate", FT + ["--data", "{tmp}/train.csv", "--learning-rate", "-1"],
         ["--learning-rate -1"], {"train.csv": GOOD}),
    Case("finetune-epochs-0", ["finetune", "--model", "{clf}", "--output", "{tmp}/run", "--data", "{tmp}/train.csv",
                               "--epochs", "0"], ["--epochs 0"], {"train.csv": GOOD}),
    Case("finetune-validation-split-1.5", FT + ["--data", "{tmp}/train.csv", "--validation-split", "1.5"],
         ["--validation-split 1.5"], {"train.csv": GOOD}),
    Case("finetune-stride-too-large", FT + ["--data", "{tmp}/train.csv", "--long-text", "chunk", "--max-seq-length",
                                            "16", "--stride", "14"], ["--stride 14"], {"train.csv": GOOD}),
    Case("finetune-bad-long-text-choice", FT + ["--data", "{tmp}/train.csv", "--long-text", "middle"],
         ["--long-text", "invalid choice", "'middle'"], {"train.csv": GOOD}),
    Case("finetune-tokenizer-larger-than-model", FT + ["--data", "{tmp}/train.csv", "--tokenizer", "minilm-l6"],
         ["tokenizer", "do not belong together"], {"train.csv": GOOD}),
    Case("finetune-preset-without-from-scratch", FT + ["--data", "{tmp}/train.csv", "--preset", "tiny"],
         ["--preset", "--from-scratch"], {"train.csv": GOOD}),
    Case("finetune-from-scratch-without-tokenizer",
         ["finetune", "--from-scratch", "--preset", "tiny", "--data", "{tmp}/train.csv", "--output", "{tmp}/run"],
         ["--tokenizer"], {"train.csv": GOOD}),
    Case("finetune-missing-output-flag", ["finetune", "--model", "{clf}", "--data", "{tmp}/train.csv"],
         ["--output", "required"], {"train.csv": GOOD}),
    # ---- finetune: the model and the run folder
    Case("finetune-model-folder-missing", FT + ["--data", "{tmp}/train.csv", "--model", "{tmp}/no-model"],
         ["{tmp}/no-model"], {"train.csv": GOOD}),
    Case("finetune-model-folder-without-config", FT + ["--data", "{tmp}/train.csv", "--model", "{tmp}/half-model"],
         ["{tmp}/half-model", "config.json"], {"train.csv": GOOD}, prepare=vocab_only),
    Case("finetune-model-weights-not-safetensors", FT + ["--data", "{tmp}/train.csv", "--model", "{tmp}/bad-model"],
         ["{tmp}/bad-model/model.safetensors", "cannot read weights"], {"train.csv": GOOD},
         prepare=copy_model("clf", "bad-model", not_safetensors)),
    Case("finetune-output-is-a-file", FT + ["--data", "{tmp}/train.csv", "--output", "{tmp}/notes.txt"],
         ["--output {tmp}/notes.txt", "not a folder"], {"train.csv": GOOD, "notes.txt": "my notes"}),
    Case("finetune-output-below-a-file", FT + ["--data", "{tmp}/train.csv", "--output", "{tmp}/notes.txt/run"],
         ["--output {tmp}/notes.txt/run", "cannot be written"], {"train.csv": GOOD, "notes.txt": "my notes"}),
    Case("finetune-output-not-empty", FT + ["--data", "{tmp}/train.csv"], ["--output {tmp}/run", "not empty"],
         {"train.csv": GOOD, "run/thesis.tex": "\\documentclass{article}", "run/figures/": None}),
    Case("finetune-output-unwritable", FT + ["--data", "{tmp}/train.csv", "--output", "{tmp}/locked/run"],
         ["--output {tmp}/locked/run", "cannot be written"], {"train.csv": GOOD}, prepare=read_only_parent,
         needs_non_root=True),
    Case("finetune-resume-without-a-run", FT + ["--data", "{tmp}/train.csv", "--resume"],
         ["--resume", "no fine-tuning run to resume"], {"train.csv": GOOD, "run/": None}),
    Case("finetune-resume-with-other-labels", FT + ["--data", "{tmp}/train.csv", "--resume"],
         ["--resume", "trained on labels"],
         {"train.csv": GOOD, "run/args.json": json.dumps({"label_names": ["bad", "good", "so-so"]})}),
    # ---- evaluate
    Case("evaluate-unknown-label", EV + ["--data", "{tmp}/test.csv"], ["'meh'", "neg, pos"],
         {"test.csv": rows(6, bad={4: "it was fine I guess,meh"})}, "test.csv: line 4"),
    Case("evaluate-not-utf8-test-file", EV + ["--data", "{tmp}/test.tsv"], ["UTF-8"],
         {"test.tsv": rows_bytes(3, b"na\xefve\tpos").replace(b",", b"\t")}, "test.tsv: line 3"),
    Case("evaluate-ragged-row-in-folder", EV + ["--data", "{tmp}/data"], ["found 3"],
         {"data/train.csv": GOOD, "data/test.csv": rows(8, bad={5: "one,too,many"})}, "data/test.csv: line 5"),
    Case("evaluate-split-the-data-lacks", EV + ["--data", "{tmp}/data", "--split", "test"], ["--split test",
                                                                                            "no test split"],
         {"data/train.csv": GOOD}),
    Case("evaluate-split-not-a-choice", EV + ["--data", "{tmp}/data", "--split", "dev"],
         ["--split", "invalid choice", "'dev'"], GOOD_FOLDER),
    Case("evaluate-model-without-classifier", EV + ["--data", "{tmp}/data", "--model", "{mlm}"],
         ["{mlm}", "classification head"], GOOD_FOLDER),
    Case("evaluate-model-weights-not-safetensors", EV + ["--data", "{tmp}/data", "--model", "{tmp}/bad-model"],
         ["{tmp}/bad-model/model.safetensors", "cannot read weights"], GOOD_FOLDER,
         prepare=copy_model("clf", "bad-model", not_safetensors)),
    Case("evaluate-output-foreign-folder", EV + ["--data", "{tmp}/data"], ["--output {tmp}/eval", "nothing was changed"],
         {**GOOD_FOLDER, "eval/metrics.json": "{}", "eval/my-analysis.ipynb": "{}"}),
    Case("evaluate-output-is-a-baseline-run", EV + ["--data", "{tmp}/data"], ["not an earlier output of bertlab evaluate"],
         {**GOOD_FOLDER, "eval/args.json": '{"bertlab_command": "baseline"}', "eval/summary.json": "{}"}),
    Case("evaluate-output-is-the-model-folder", EV + ["--data", "{tmp}/data", "--output", "{clf}"],
         ["--output {clf}", "nothing was changed"], GOOD_FOLDER),
    Case("evaluate-default-output-taken-by-a-user-folder",
         ["evaluate", "--model", "{tmp}/model", "--data", "{tmp}/data", "--bootstrap", "0"],
         ["{tmp}/model/eval-data-test", "nothing was changed"], GOOD_FOLDER,
         prepare=copy_model("clf", "model", with_user_folder("eval-data-test"))),
    Case("evaluate-output-is-a-file", EV + ["--data", "{tmp}/data", "--output", "{tmp}/notes.txt"],
         ["--output {tmp}/notes.txt", "not a folder"], {**GOOD_FOLDER, "notes.txt": "mine"}),
    Case("evaluate-batch-size-0", EV + ["--data", "{tmp}/data", "--batch-size", "0"], ["--batch-size 0"], GOOD_FOLDER),
    # ---- baseline
    Case("baseline-output-is-a-finetune-run", BL + ["--data", "{tmp}/data", "--output", "{tmp}/run"],
         ["--output {tmp}/run", "not an earlier output of bertlab baseline"], GOOD_FOLDER,
         prepare=copy_model("clf", "run", as_finetune_run)),
    Case("baseline-output-is-a-pretrain-run", BL + ["--data", "{tmp}/data", "--output", "{tmp}/run"],
         ["--output {tmp}/run", "not an earlier output of bertlab baseline"], GOOD_FOLDER,
         prepare=copy_model("mlm", "run", as_pretrain_run)),
    Case("baseline-output-is-a-file", BL + ["--data", "{tmp}/data", "--output", "{tmp}/notes.txt"],
         ["--output {tmp}/notes.txt", "not a folder"], {**GOOD_FOLDER, "notes.txt": "mine"}),
    Case("baseline-output-is-the-data-folder", BL + ["--data", "{tmp}/data", "--output", "{tmp}/data"],
         ["--output {tmp}/data", "nothing was changed"], GOOD_FOLDER),
    Case("baseline-negative-C", BL[:-1] + ["-1", "--data", "{tmp}/data"], ["--C -1"], GOOD_FOLDER),
    Case("baseline-test-data-unknown-label", BL + ["--data", "{tmp}/data/train.csv", "--test-data", "{tmp}/mine.csv"],
         ["'date'", "training data"], {**GOOD_FOLDER, "mine.csv": rows(5, bad={3: "a date,date"})}, "mine.csv: line 3"),
    Case("baseline-label-cell-empty", BL + ["--data", "{tmp}/data"], ["empty label"],
         {"data/train.csv": rows(bad={12: "no label here,  "}), "data/test.csv": rows(8)}, "data/train.csv: line 12"),
    Case("baseline-json-array-of-non-objects", BL + ["--data", "{tmp}/train.json"], ["expected a JSON object"],
         {"train.json": '["one", "two"]'}, "train.json: row 1"),
    # ---- predict
    Case("predict-file-missing", PR + ["--file", "{tmp}/texts.txt"], ["{tmp}/texts.txt", "no such file"]),
    Case("predict-file-not-utf8", PR + ["--file", "{tmp}/texts.txt"], ["UTF-8"],
         {"texts.txt": b"a fine film\nanother one\n\xff\xfe broken\n"}, "texts.txt: line 3"),
    Case("predict-file-empty-line", PR + ["--file", "{tmp}/texts.txt"], ["empty text"],
         {"texts.txt": "a fine film\n   \nanother one\n"}, "texts.txt: line 2"),
    Case("predict-file-utf16-without-bom", PR + ["--file", "{tmp}/texts.txt"], ["NUL"],
         {"texts.txt": "a fine film\nanother one\n".encode("utf-16-le")}, "texts.txt: line 1"),
    Case("predict-table-missing-column", PR + ["--file", "{tmp}/texts.csv", "--text-column", "body"],
         ["{tmp}/texts.csv", "'body'"], {"texts.csv": "id,text\n1,a fine film\n"}),
    Case("predict-table-empty-text-cell", PR + ["--file", "{tmp}/texts.csv"], ["empty text"],
         {"texts.csv": "id,text\n1,a fine film\n2,\n"}, "texts.csv: line 3"),
    Case("predict-texts-and-file", PR + ["--file", "{tmp}/texts.txt", "a text too"], ["not both"],
         {"texts.txt": "a fine film\n"}),
    Case("predict-stride-too-large", PR + ["--long-text", "chunk", "--max-seq-length", "16", "--stride", "14",
                                           "a long enough text to need a window or two"], ["--stride 14"]),
    Case("predict-model-folder-without-config", PR[:-1] + ["{tmp}/half-model", "a text"],
         ["{tmp}/half-model", "config.json"], prepare=vocab_only),
    Case("predict-model-folder-missing", PR[:-1] + ["{tmp}/no-model", "a text"], ["{tmp}/no-model"]),
    # ---- fill-mask
    Case("fill-mask-top-k-0", ["fill-mask", "--model", "{mlm}", "--top-k", "0", "the [MASK] was good"],
         ["--top-k 0"]),
    Case("fill-mask-classifier-has-no-mlm-head", ["fill-mask", "--model", "{clf}", "the [MASK] was good"],
         ["{clf}", "MLM head"]),
    Case("fill-mask-text-without-mask", ["fill-mask", "--model", "{mlm}", "the film was good"], ["no [MASK]"]),
    Case("fill-mask-model-weights-not-safetensors", ["fill-mask", "--model", "{tmp}/bad-model", "a [MASK]"],
         ["{tmp}/bad-model/model.safetensors", "cannot read weights"],
         prepare=copy_model("mlm", "bad-model", not_safetensors)),
    # ---- pretrain
    Case("pretrain-max-seq-length-4", PT + ["--max-seq-length", "4"], ["--max-seq-length 4"], {"corpus.txt": CORPUS}),
    Case("pretrain-corpus-missing", PT, ["{tmp}/corpus.txt", "no such file"]),
    Case("pretrain-corpus-not-utf8", PT, ["UTF-8"],
         {"corpus.txt": CORPUS.encode() + b"\n\nLatin-1 \xe9t\xe9 here.\n"}, "corpus.txt: line 19"),
    Case("pretrain-corpus-empty", PT, ["{tmp}/corpus.txt", "empty"], {"corpus.txt": "\n\n  \n"}),
    Case("pretrain-corpus-too-few-documents", PT, ["--corpus", "at least 3"], {"corpus.txt": "One doc.\n\nTwo docs.\n"}),
    Case("pretrain-output-not-empty", PT, ["--output {tmp}/run", "not empty"],
         {"corpus.txt": CORPUS, "run/keep.md": "mine"}),
    Case("pretrain-output-is-a-file", PT + ["--output", "{tmp}/corpus.txt"], ["--output {tmp}/corpus.txt",
                                                                           "not a folder"], {"corpus.txt": CORPUS}),
    Case("pretrain-resume-without-a-run", PT + ["--resume"], ["--resume", "no run to resume"],
         {"corpus.txt": CORPUS, "run/": None}),
    Case("pretrain-vocab-size-too-small", PT + ["--vocab-size", "10"], ["--vocab-size 10"], {"corpus.txt": CORPUS}),
    Case("pretrain-heldout-1.5", PT + ["--heldout", "1.5"], ["--heldout 1.5"], {"corpus.txt": CORPUS}),
    # ---- info
    Case("info-folder-missing", ["info", "{tmp}/no-model"], ["{tmp}/no-model", "no such folder"]),
    Case("info-folder-without-config", ["info", "{tmp}/half-model"], ["{tmp}/half-model", "config.json"],
         prepare=vocab_only),
    Case("info-weights-not-safetensors", ["info", "{tmp}/bad-model"], ["{tmp}/bad-model/model.safetensors"],
         prepare=copy_model("clf", "bad-model", not_safetensors)),
    Case("info-unknown-preset", ["info", "--preset", "gigantic"], ["--preset", "invalid choice", "'gigantic'"]),
    # ---- bench
    Case("bench-unknown-task", BENCH + ["--task", "translate"], ["--task", "invalid choice", "'translate'"]),
    Case("bench-steps-0", BENCH + ["--steps", "0"], ["--steps 0"]),
    Case("bench-unknown-preset", BENCH + ["--preset", "gigantic"], ["--preset", "invalid choice", "'gigantic'"]),
    Case("bench-lengths-not-a-data-set", BENCH + ["--lengths", "{tmp}/nope"], ["{tmp}/nope"]),
    Case("bench-output-not-a-bench-result", BENCH + ["--output", "{tmp}/results.json"],
         ["--output {tmp}/results.json", "nothing was changed"], {"results.json": '{"mine": true}'}),
    Case("bench-unknown-device", BENCH + ["--device", "abacus"], ["--device abacus"]),
    # ---- no command
    Case("unknown-command", ["frobnicate", "--data", "x"], ["invalid choice", "'frobnicate'"]),
]


# --- the test ------------------------------------------------------------------------------------


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under `roots` (and the roots): path -> (mode, SHA-256 of a file's bytes)."""
    state = {}
    for root in roots:
        state[str(root)] = (root.lstat().st_mode, None)
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                mode = path.lstat().st_mode
                if stat.S_ISREG(mode):
                    content = hashlib.sha256(path.read_bytes()).hexdigest()
                elif stat.S_ISLNK(mode):
                    content = os.readlink(path)
                else:
                    content = None
                state[str(path)] = (mode, content)
    return state


def fill(text: str, tmp: Path, models: dict[str, Path]) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{clf}", str(models["clf"])).replace("{mlm}", str(models["mlm"]))


def param(case: Case):
    marks = []
    if case.needs_non_root:
        marks.append(pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                                        reason="root writes into any folder, whatever its mode"))
    if case.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
    return pytest.param(case, id=case.id, marks=marks)


def test_the_catalogue_is_large_and_its_names_unique():
    assert len(CASES) >= 35 and len({c.id for c in CASES}) == len(CASES)
    assert {c.argv[0] for c in CASES} >= {"finetune", "evaluate", "baseline", "predict", "fill-mask", "pretrain",
                                          "info", "bench"}


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tmp_path, models, capsys, monkeypatch):
    monkeypatch.delenv("BERTLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a command that writes a default folder would write it here, and be seen
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.prepare:
        case.prepare(tmp_path, models)
    argv = [fill(a, tmp_path, models) for a in case.argv]
    output = next((Path(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--output"), None)
    output_before = output is not None and output.exists()
    before = snapshot(tmp_path, models["root"])
    capsys.readouterr()

    try:
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse refusing a flag
            code = exit_.code
        err = capsys.readouterr().err
        after = snapshot(tmp_path, models["root"])
    finally:
        if (tmp_path / "locked").exists():
            (tmp_path / "locked").chmod(0o700)  # so that pytest can clean up

    command = case.argv[0] if case.argv[0] in {"finetune", "evaluate", "baseline", "predict", "fill-mask",
                                                "pretrain", "info", "bench"} else None
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"bertlab {command}: error: " if command else "bertlab: error: "), err
    assert "Traceback" not in err
    for fragment in case.expect:
        assert fill(fragment, tmp_path, models) in err, (fragment, err)
    if case.where:
        assert f"{tmp_path / case.where}" in err, (case.where, err)

    # nothing of the user's removed or changed, nothing new (no half-written output, no temporary files)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == []
    if output is not None and not output_before:
        assert not output.exists()
