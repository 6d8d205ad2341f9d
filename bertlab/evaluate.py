"""Evaluating a fine-tuned classifier on a data split: metrics, figures, predictions.

`run_evaluation(EvaluateArgs(...))` is what `bertlab evaluate` runs. The folder it leaves (by
default `MODEL/eval-<data>-<split>/`, replaced as a whole when evaluated again):

    metrics.json                     accuracy, macro/weighted precision, recall, F1, the per-class
                                     report, the confusion matrix, ROC-AUC (two classes), 95%
                                     bootstrap intervals, ECE with its reliability bins, and the most
                                     confidently wrong examples (see `bertlab.metrics`)
    confusion_matrix.json            {"labels": [...], "matrix": [[...]]}, rows true, columns predicted
    confusion_matrix.png             counts; confusion_matrix_normalized.png: shares of each true class
    reliability_diagram.png          accuracy per confidence bin against the diagonal
    per_class_f1.png                 F1 of each class and the macro-F1
    predictions.jsonl                one line per example: id, label, predicted, probabilities
    errors.jsonl                     the wrong predictions, most confident first, with their texts

The data's label names are matched to the model's `id2label` by name (exactly, else ignoring
case); a label the model never saw is an error naming the file and row. Nothing is written
until everything has been computed, and the folder appears at once (a temporary folder renamed),
so a failure leaves no half-written folder behind. `bertlab baseline` (in `baseline.py`) writes
the same files with `bertlab.report.write_report`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .common import BertlabError, check_options, option
from .data.classification import ClassificationData, ClassificationSplit, is_data_file, load_test_file
from .data.source import DataArgs
from .encoding import LONG_TEXT
from .report import args_json, atomic_folder, check_output, slug, write_report

SPLITS = ("train", "validation", "test")


class EvaluateError(BertlabError):
    """Arguments or inputs that cannot make an evaluation."""


@dataclass(kw_only=True)
class ReportArgs(DataArgs):
    """What `bertlab evaluate` and `bertlab baseline` share: the data, the split, the metrics."""

    data: str = option(help="rotten_tomatoes (embedded), sst2, chnsenticorp, a CSV/TSV/JSON-lines/Parquet file, "
                       "or a folder of train/validation (or dev)/test files", group="data")  # no default here
    split: str = option("test", "split to evaluate on", group="data", choices=SPLITS)
    seed: int = option(0, "seed of the validation slice carved from train (use the fine-tuning run's)",
                       group="data")
    bootstrap: int = option(1000, "resamples for the 95% percentile-bootstrap intervals of accuracy and macro-F1 "
                            "(0: none)", group="metrics and output", minimum=0)
    bootstrap_seed: int = option(0, "seed of the bootstrap resamples", group="metrics and output")
    top_errors: int = option(10, "most confidently wrong examples kept in metrics.json", group="metrics and output", minimum=0)

    def validate(self) -> None:
        check_options(self, EvaluateError)

    def evaluation_data(self) -> tuple[ClassificationData, ClassificationSplit]:
        """(the data, the split to evaluate). One file with --split test is a test set, all of it."""
        if self.split == "test" and is_data_file(self.data, self.data_dir):
            data = load_test_file(self.data, self.data_dir, self.text_column, self.text_pair_column,
                                  self.label_column)
        else:
            data = self.load_data(self.seed)
        return data, self.split_of(data)

    def split_of(self, data: ClassificationData) -> ClassificationSplit:
        """The split to evaluate; an error naming the flag if the data has no such split or it is empty."""
        if self.split not in data.splits:
            raise EvaluateError(f"--split {self.split}: {data.name} has no {self.split} split "
                                f"(it has {', '.join(data.splits)})")
        split = data.splits[self.split]
        if len(split) == 0:
            raise EvaluateError(f"--split {self.split}: the {self.split} split of {data.name} is empty")
        return split


@dataclass(kw_only=True)
class EvaluateArgs(ReportArgs):
    model: str = option(help="a `bertlab finetune` output folder (or any BERT classifier folder)")
    output: str | None = option(None, "folder to write (default: MODEL/eval-DATA-SPLIT); an earlier evaluation "
                                "there is replaced", group="metrics and output")
    batch_size: int = option(64, "examples per batch", group="prediction", minimum=1)
    max_seq_length: int | None = option(None, "tokens per example (default: as fine-tuned, or 128)",
                                        group="prediction", minimum=8)
    long_text: str | None = option(None, "truncate, head-tail or chunk (default: as fine-tuned, or truncate)",
                                   group="prediction", choices=LONG_TEXT)
    stride: int | None = option(None, "window overlap with --long-text chunk (default: as fine-tuned, or 32)",
                                group="prediction", minimum=0)
    progress: bool | None = None  # a progress bar: None shows one on a terminal only


# --------------------------------------------------------------------------- labels

def row_place(data: str, data_dir: str | None, row_id: str) -> str:
    """'FILE: line N' (or 'row N' for Parquet) for a row id like 'test.tsv:17'; the id itself otherwise."""
    name, _, number = row_id.rpartition(":")
    path = Path(data).expanduser()
    if not path.exists() and data_dir and (Path(data_dir) / path).exists():
        path = Path(data_dir) / path
    if not name or not number.isdigit() or not path.exists():
        return row_id
    file = path / name if path.is_dir() else path
    unit = "row" if file.suffix.lower() in (".parquet", ".pq") else "line"
    return f"{file}: {unit} {number}"


def map_labels(labels: Sequence[int], data_label_names: Sequence[str], model_label_names: Sequence[str],
               ids: Sequence[str], where: Callable[[str], str] = str, model: str = "the model") -> list[int]:
    """The data's label indices as the model's class indices, matched by name (exactly, else ignoring case)."""
    exact = {name: i for i, name in enumerate(model_label_names)}
    folded: dict[str, list[int]] = {}
    for i, name in enumerate(model_label_names):
        folded.setdefault(name.casefold(), []).append(i)
    to_model: dict[int, int | None] = {}
    for j, name in enumerate(data_label_names):
        if name in exact:
            to_model[j] = exact[name]
        elif len(folded.get(name.casefold(), [])) == 1:
            to_model[j] = folded[name.casefold()][0]
        else:
            to_model[j] = None
    out = []
    for y, row_id in zip(labels, ids):
        k = to_model[y]
        if k is None:
            known = ", ".join(model_label_names[:20]) + (", ..." if len(model_label_names) > 20 else "")
            raise EvaluateError(f"{where(row_id)}: label {data_label_names[y]!r} is not one {model} was trained on "
                                f"(its labels: {known})")
        out.append(k)
    return out


# --------------------------------------------------------------------------- the run

def default_output(args: EvaluateArgs, data_name: str) -> Path:
    base = Path(args.model) if Path(args.model).is_dir() else Path(".")
    return base / f"eval-{slug(data_name)}-{args.split}"


def run_evaluation(args: EvaluateArgs, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Predict the split with the model, compute the metrics, write the folder; returns metrics.json's content."""
    import torch

    from .encoding import encoding_settings
    from .metrics import classification_metrics
    from .predict import label_names, load_classifier, predict_proba

    args.validate()
    if args.output is not None:
        check_output(Path(args.output), "evaluate")

    model, tokenizer = load_classifier(args.model)  # first: a wrong --model fails before the data is read
    names = label_names(model)
    data, split = args.evaluation_data()
    out = Path(args.output) if args.output is not None else default_output(args, data.name)
    check_output(out, "evaluate")

    data_dir = args.data_dir or os.environ.get("BERTLAB_DATA_DIR")
    y_true = map_labels(split.labels, data.label_names, names, split.ids,
                        where=lambda row_id: row_place(args.data, data_dir, row_id), model=f"the model {args.model}")

    settings = encoding_settings(args.model, max_seq_length=args.max_seq_length, long_text=args.long_text,
                                 stride=args.stride)
    if torch.cuda.is_available():
        model.cuda()
    log(f"evaluating {args.model} on {data.name} {args.split}: {len(split):,} examples, {len(names)} classes "
        f"(max_seq_length {settings['max_seq_length']}, long_text {settings['long_text']})")
    started = time.perf_counter()
    probs = predict_proba(model, tokenizer, split.texts, split.pairs, batch_size=args.batch_size,
                          progress=args.progress, **settings).float().cpu()
    seconds = time.perf_counter() - started

    metrics = classification_metrics(y_true, probs, names, texts=split.texts, ids=split.ids, pairs=split.pairs,
                                     bootstrap=args.bootstrap, seed=args.bootstrap_seed, top_k=args.top_errors)
    result = {"model": str(args.model), "kind": "bert", "data": data.name, "split": args.split,
              "settings": {**settings, "batch_size": args.batch_size}, "predict_seconds": round(seconds, 2),
              **metrics}
    check_output(out, "evaluate")  # again: the folder may have changed while the model predicted
    with atomic_folder(out) as tmp:
        write_report(tmp, result, y_true, probs, names, split.ids, split.texts, split.pairs,
                     title=f"{data.name} {args.split}")
        (tmp / "args.json").write_text(args_json("evaluate", args), encoding="utf-8")
    result["output"] = str(out)
    return result


def report_lines(result: dict[str, Any], args: EvaluateArgs) -> list[str]:
    """What `bertlab evaluate` prints at the end."""
    from .metrics import summary_lines

    return summary_lines(result) + [f"metrics.json, figures, predictions.jsonl and errors.jsonl in {result['output']}"]
