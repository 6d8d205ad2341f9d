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
the same files with `write_report`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

SPLITS = ("train", "validation", "test")
LONG_TEXT = ("truncate", "chunk")


class EvaluateError(ValueError):
    """Arguments or inputs that cannot make an evaluation."""


@dataclass
class EvaluateArgs:
    model: str
    data: str = "rotten_tomatoes"
    split: str = "test"
    output: str | None = None  # None: MODEL/eval-<data>-<split>
    data_dir: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    validation_split: float = 0.1
    seed: int = 0
    batch_size: int = 64
    max_seq_length: int | None = None  # None: as fine-tuned (args.json), else 128
    long_text: str | None = None  # None: as fine-tuned, else truncate
    stride: int | None = None  # None: as fine-tuned, else 32
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    top_errors: int = 10
    progress: bool | None = None


# --------------------------------------------------------------------------- output folders

def slug(name: str) -> str:
    """A folder-name-safe version of a data set name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


# The key of args.json that says which command wrote a folder. A file name is not proof enough that a
# folder may be replaced: a pretraining run holds a summary.json too, and a user's folder anything.
COMMAND_KEY = "bertlab_command"


def args_json(command: str, args: Any) -> str:
    """args.json of an output folder: the arguments, and the command that wrote the folder."""
    return json.dumps({COMMAND_KEY: command, **asdict(args)}, indent=2) + "\n"


def written_by(out: Path, command: str) -> bool:
    """True if `out` holds an earlier output of `bertlab <command>` (its args.json says so)."""
    try:
        return json.loads((out / "args.json").read_text(encoding="utf-8")).get(COMMAND_KEY) == command
    except (OSError, ValueError, AttributeError):
        return False


def check_output(out: Path, command: str, flag: str = "--output") -> None:
    """`out` may be created, or replaced if it is empty or an earlier output of the same command."""
    if out.exists() and not out.is_dir():
        raise EvaluateError(f"{flag} {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not written_by(out, command):
        raise EvaluateError(f"{flag} {out}: folder exists, is not empty and is not an earlier output of "
                            f"bertlab {command}; nothing was changed, choose another folder")


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            if old is not None:
                old.rename(out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _jsonl(path: Path, records) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_report(folder: str | Path, metrics: dict[str, Any], y_true: Sequence[int], probs, label_names: Sequence[str],
                 ids: Sequence[str], texts: Sequence[str], pairs: Sequence[str] | None = None,
                 title: str = "") -> None:
    """metrics.json, confusion matrix (JSON, PNG), reliability diagram, per-class F1, predictions and errors."""
    import numpy as np

    from .metrics import confident_errors
    from .plots import save_confusion_matrix, save_per_class_f1, save_reliability_diagram

    folder = Path(folder)
    p = np.asarray(probs.detach().cpu().double().numpy() if hasattr(probs, "detach") else probs, dtype=np.float64)
    names = list(label_names)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "confusion_matrix.json").write_text(
        json.dumps({"labels": names, "rows": "true label", "columns": "predicted label",
                    "matrix": metrics["confusion_matrix"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    prefix = f"{title}: " if title else ""
    save_confusion_matrix(metrics["confusion_matrix"], names, folder / "confusion_matrix.png",
                          title=f"{prefix}confusion matrix")
    save_confusion_matrix(metrics["confusion_matrix"], names, folder / "confusion_matrix_normalized.png",
                          normalize=True, title=f"{prefix}confusion matrix (row-normalised)")
    save_reliability_diagram(metrics["calibration"], folder / "reliability_diagram.png")
    save_per_class_f1(metrics, folder / "per_class_f1.png", title=f"{prefix}F1 per class")
    pred = p.argmax(axis=1)
    _jsonl(folder / "predictions.jsonl", (
        {"id": ids[i], "label": names[int(y_true[i])], "predicted": names[int(pred[i])],
         "probabilities": {n: round(float(v), 6) for n, v in zip(names, p[i])}}
        for i in range(len(ids))))
    _jsonl(folder / "errors.jsonl", confident_errors(y_true, p, names, texts, ids, pairs, top_k=None))


# --------------------------------------------------------------------------- labels

def _where(data: str, data_dir: str | None, row_id: str) -> str:
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

def validate(args: EvaluateArgs) -> None:
    if args.split not in SPLITS:
        raise EvaluateError(f"--split {args.split!r}: choose one of {', '.join(SPLITS)}")
    if args.long_text is not None and args.long_text not in LONG_TEXT:
        raise EvaluateError(f"--long-text {args.long_text!r}: choose one of {', '.join(LONG_TEXT)}")
    if args.batch_size < 1:
        raise EvaluateError("--batch-size must be at least 1")
    if args.max_seq_length is not None and args.max_seq_length < 8:
        raise EvaluateError(f"--max-seq-length {args.max_seq_length}: must be at least 8")
    if args.bootstrap < 0:
        raise EvaluateError(f"--bootstrap {args.bootstrap}: must be 0 (no intervals) or more")
    if args.top_errors < 0:
        raise EvaluateError(f"--top-errors {args.top_errors}: must be 0 or more")


def default_output(args: EvaluateArgs, data_name: str) -> Path:
    base = Path(args.model) if Path(args.model).is_dir() else Path(".")
    return base / f"eval-{slug(data_name)}-{args.split}"


def run_evaluation(args: EvaluateArgs, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Predict the split with the model, compute the metrics, write the folder; returns metrics.json's content."""
    import torch

    from .data.classification import load_classification
    from .finetune import _run_defaults, label_names, load_classifier, predict_proba
    from .metrics import classification_metrics

    validate(args)
    if args.output is not None:
        check_output(Path(args.output), "evaluate")

    model, tokenizer = load_classifier(args.model)  # first: a wrong --model fails before the data is read
    names = label_names(model)
    data = load_classification(args.data, args.data_dir, args.text_column, args.text_pair_column,
                               args.label_column, args.validation_split, args.seed)
    if args.split not in data.splits:
        raise EvaluateError(f"--split {args.split}: {data.name} has no {args.split} split "
                            f"(it has {', '.join(data.splits)})")
    split = data.splits[args.split]
    if len(split) == 0:
        raise EvaluateError(f"--split {args.split}: the {args.split} split of {data.name} is empty")
    out = Path(args.output) if args.output is not None else default_output(args, data.name)
    check_output(out, "evaluate")

    data_dir = args.data_dir or os.environ.get("BERTLAB_DATA_DIR")
    y_true = map_labels(split.labels, data.label_names, names, split.ids,
                        where=lambda row_id: _where(args.data, data_dir, row_id), model=f"the model {args.model}")

    settings = {"max_seq_length": 128, "long_text": "truncate", "stride": 32, **_run_defaults(args.model)}
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
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


# --------------------------------------------------------------------------- command line

def cmd_evaluate(args) -> int:
    from .metrics import summary_lines

    fields = EvaluateArgs.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    result = run_evaluation(EvaluateArgs(**values), log=lambda msg: print(msg, flush=True))
    for line in summary_lines(result):
        print(line)
    print(f"metrics.json, figures, predictions.jsonl and errors.jsonl in {result['output']}")
    return 0


def cmd_baseline(args) -> int:
    from .baseline import BaselineArgs, run_baseline

    fields = BaselineArgs.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    summary = run_baseline(BaselineArgs(**values), log=lambda msg: print(msg, flush=True))
    for name, row in summary["baselines"].items():
        ci = row.get("accuracy_ci")
        shown = f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
        print(f"{name:>9}: accuracy {row['accuracy']:.4f}{shown}, macro-F1 {row['macro_f1']:.4f}")
    print(f"one folder per baseline (metrics.json, figures, predictions) and summary.json in {summary['output']}")
    return 0


def _data_flags(p, default_data: str | None) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=default_data is None, default=default_data,
                   help="rotten_tomatoes (embedded), sst2, chnsenticorp, a CSV/TSV/JSON-lines/Parquet file, or a "
                        "folder of train/validation (or dev)/test files")
    g.add_argument("--split", default="test", choices=SPLITS, help="split to evaluate on")
    g.add_argument("--data-dir", help="folder holding sst2/ and chnsenticorp/ (default: $BERTLAB_DATA_DIR)")
    g.add_argument("--text-column", help="column of the text (default: text, sentence, review, content, ...)")
    g.add_argument("--text-pair-column", help="column of a second text, for sentence-pair tasks")
    g.add_argument("--label-column",
                   help="column of the label (default: label, labels, category, class, sentiment, ...)")
    g.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of train held out (seeded, stratified) when the data has no validation file; "
                        "use the fine-tuning run's value")
    g.add_argument("--seed", type=int, default=0, help="seed of that validation slice (use the fine-tuning run's)")


def _metric_flags(g) -> None:
    g.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples for the 95%% percentile-bootstrap intervals of accuracy and macro-F1 (0: none)")
    g.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples")
    g.add_argument("--top-errors", type=int, default=10, help="most confidently wrong examples kept in metrics.json")


def add_subcommands(sub) -> None:
    """Register `bertlab evaluate` and `bertlab baseline` on the argparse subparsers `sub`."""
    import argparse

    p = sub.add_parser(
        "evaluate", help="metrics, figures and predictions of a fine-tuned classifier on a data split",
        description="Predict a data split with a fine-tuned classifier and write metrics.json (accuracy, macro and "
                    "weighted precision/recall/F1, per-class report, confusion matrix, ROC-AUC for two classes, 95%% "
                    "bootstrap intervals, expected calibration error, the most confidently wrong examples), figures "
                    "(confusion matrix, reliability diagram, per-class F1), predictions.jsonl and errors.jsonl.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="a `bertlab finetune` output folder (or any BERT classifier folder)")
    _data_flags(p, None)
    g = p.add_argument_group("prediction")
    g.add_argument("--batch-size", type=int, default=64, help="examples per batch")
    g.add_argument("--max-seq-length", type=int, help="tokens per example (default: as fine-tuned, or 128)")
    g.add_argument("--long-text", choices=LONG_TEXT, help="truncate or chunk (default: as fine-tuned, or truncate)")
    g.add_argument("--stride", type=int, help="window overlap with --long-text chunk (default: as fine-tuned, or 32)")
    g = p.add_argument_group("metrics and output")
    _metric_flags(g)
    g.add_argument("--output", help="folder to write (default: MODEL/eval-DATA-SPLIT); an earlier evaluation "
                                    "there is replaced")
    p.set_defaults(func=cmd_evaluate)

    b = sub.add_parser(
        "baseline", help="majority-class and TF-IDF + logistic-regression baselines on a data set",
        description="Fit the majority class and TF-IDF + logistic regression (scikit-learn) on the training split, "
                    "choose the regularisation C on the validation split, and evaluate both on --split, writing the "
                    "same metrics.json and figures as `bertlab evaluate` (OUTPUT/majority/, OUTPUT/tfidf_lr/) and "
                    "OUTPUT/summary.json. A fine-tuned BERT that does not beat these is not yet useful.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _data_flags(b, None)
    g = b.add_argument_group("TF-IDF + logistic regression")
    g.add_argument("--analyzer", default="auto", choices=["auto", "word", "char"],
                   help="word 1-2-grams or character 1-3-grams; auto: characters when the training texts are "
                        "mostly Chinese/Japanese/Korean script")
    g.add_argument("--C", dest="c_grid", type=float, nargs="+",
                   help="inverse regularisation strength(s); more than one: the one with the best validation "
                        "accuracy (default grid 0.25 0.5 1 2 4 8 16)")
    g.add_argument("--min-df", type=int, default=1, help="drop n-grams found in fewer training texts")
    g.add_argument("--max-features", type=int, help="keep only the most frequent n-grams")
    g = b.add_argument_group("metrics and output")
    _metric_flags(g)
    g.add_argument("--output", help="folder to write (default: runs/baseline-DATA-SPLIT); an earlier baseline run "
                                    "there is replaced")
    b.set_defaults(func=cmd_baseline)
