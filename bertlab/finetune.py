"""Fine-tuning BERT for text classification, and prediction with the result.

`run_finetune(FinetuneArgs(...))` is what `bertlab finetune` runs; `load_classifier` and
`predict_proba` are what `bertlab predict` (and `bertlab evaluate`) use. The run folder it leaves
is a Hugging Face model folder that `transformers.pipeline("text-classification", model=DIR)`
loads as it is:

    config.json, model.safetensors   the BEST model on the validation split (not the last one),
                                     with id2label / label2id from the data's label names
    vocab.txt, tokenizer.json, ...   the tokenizer it was trained with
    metrics.jsonl                    training and validation records, one JSON object per line
    learning_curve.png               loss, accuracy and macro-F1 against the optimizer step
    finetune_summary.json            validation metrics (before training and of the best model),
                                     steps, training time, data sizes
    args.json                        the arguments of the run
    checkpoints/                     the latest checkpoints, for --resume

Long texts. `truncate` (the default) keeps the first `max_seq_length` tokens (with a text pair,
the longer segment is cut first). `chunk` cuts the first segment into overlapping windows of
`max_seq_length` tokens (`stride` tokens shared by neighbouring windows; a second segment,
capped at half the length, rides along with every window). Training then uses EVERY window as an
example with its document's label; evaluation and prediction average the windows' logits into one
prediction per document.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from .config import PRESETS, BertConfig
from .model import BertForSequenceClassification
from .tokenizer import WordPieceTokenizer

LONG_TEXT = ("truncate", "chunk")
SUMMARY_FILE = "finetune_summary.json"
CURVE_FILE = "learning_curve.png"


class FinetuneError(ValueError):
    """Arguments or inputs that cannot make a fine-tuning run or a prediction."""


# --- encoding ------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """Token ids of windows (one per document with truncation, one or more with chunking)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    doc: list[int]  # window -> index of its document
    n_docs: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(
    tokenizer: WordPieceTokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    max_seq_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
) -> Encoded:
    """[CLS] text [SEP] (pair [SEP]) token ids, truncated or cut into overlapping windows."""
    texts = list(texts)
    if pairs is not None and len(pairs) != len(texts):
        raise FinetuneError(f"{len(texts)} texts but {len(pairs)} second segments")
    if long_text not in LONG_TEXT:
        raise FinetuneError(f"--long-text {long_text!r}: choose one of {', '.join(LONG_TEXT)}")
    if max_seq_length < 8:
        raise FinetuneError(f"--max-seq-length {max_seq_length}: must be at least 8")
    if not texts:
        return Encoded([], [], [], 0)
    backend = tokenizer.backend
    if long_text == "truncate":
        backend.enable_truncation(max_seq_length, strategy="longest_first")
        try:
            inputs = list(zip(texts, pairs)) if pairs is not None else texts
            encodings = backend.encode_batch(inputs)
        finally:
            backend.no_truncation()
        return Encoded([e.ids for e in encodings], [e.type_ids for e in encodings], list(range(len(texts))), len(texts))

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids_a = tokenizer.encode_batch_ids(texts)
    ids_b = tokenizer.encode_batch_ids(list(pairs)) if pairs is not None else None
    out = Encoded([], [], [], len(texts))
    for d, a in enumerate(ids_a):
        b = ids_b[d][: (max_seq_length - 3) // 2] if ids_b is not None else None
        room = max_seq_length - 2 - (len(b) + 1 if b is not None else 0)  # tokens of `a` per window
        step = room - stride
        if step < 1:
            raise FinetuneError(
                f"--stride {stride}: windows of {room} text tokens would not move forward; use a stride below {room}"
            )
        start = 0
        while True:
            window = a[start : start + room]
            ids = [cls_id] + window + [sep_id]
            types = [0] * len(ids)
            if b is not None:
                ids += b + [sep_id]
                types += [1] * (len(b) + 1)
            out.input_ids.append(ids)
            out.token_type_ids.append(types)
            out.doc.append(d)
            if start + room >= len(a):
                break
            start += step
    return out


class PadCollator:
    """Examples (token id lists, a label) -> a batch padded to its longest member."""

    def __init__(self, pad_token_id: int = 0):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        B, T = len(examples), max(len(x["input_ids"]) for x in examples)
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros(B, T, dtype=torch.long)
        attention_mask = torch.zeros(B, T, dtype=torch.long)
        for row, x in enumerate(examples):
            n = len(x["input_ids"])
            input_ids[row, :n] = torch.tensor(x["input_ids"])
            token_type_ids[row, :n] = torch.tensor(x["token_type_ids"])
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        if "labels" in examples[0]:
            batch["labels"] = torch.tensor([x["labels"] for x in examples], dtype=torch.long)
        return batch


# --- prediction ----------------------------------------------------------------------------------


def _progress_disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # None: tqdm shows a bar only on a terminal


@torch.no_grad()
def encoded_logits(model, encoded: Encoded, pad_token_id: int = 0, batch_size: int = 64,
                   progress: bool | None = False) -> torch.Tensor:
    """(N documents, num_labels) float32 logits on the CPU, window logits averaged per document.

    Windows are run longest first in batches of similar length (little padding, and a batch that
    does not fit in memory fails at once); results come back in document order.
    """
    from tqdm.auto import tqdm

    num_labels = model.config.num_labels
    sums = torch.zeros(encoded.n_docs, num_labels)
    counts = torch.zeros(encoded.n_docs)
    if not len(encoded):
        return sums
    device = next(model.parameters()).device
    collate = PadCollator(pad_token_id)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded.input_ids[i]))
    for start in tqdm(range(0, len(order), batch_size), desc="predict", leave=False,
                      disable=_progress_disabled(progress)):
        idx = order[start : start + batch_size]
        batch = collate([{"input_ids": encoded.input_ids[i], "token_type_ids": encoded.token_type_ids[i]} for i in idx])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()  # (B, K)
        docs = torch.tensor([encoded.doc[i] for i in idx])
        sums.index_add_(0, docs, logits)
        counts.index_add_(0, docs, torch.ones(len(idx)))
    return sums / counts.clamp(min=1).unsqueeze(1)


@contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def predict_proba(
    model: BertForSequenceClassification,
    tokenizer: WordPieceTokenizer,
    texts: list[str],
    pairs: list[str] | None = None,
    batch_size: int = 64,
    max_seq_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
    progress: bool | None = None,
) -> torch.Tensor:
    """(N, num_labels) float32 class probabilities of `texts` (and `pairs`), in input order."""
    if isinstance(texts, str):
        raise FinetuneError("texts must be a list of strings, not one string")
    positions = model.config.max_position_embeddings
    if max_seq_length > positions:
        raise FinetuneError(f"max_seq_length {max_seq_length} is more than the model's {positions} positions")
    encoded = encode_texts(tokenizer, texts, pairs, max_seq_length, long_text, stride)
    with _eval_mode(model):
        logits = encoded_logits(model, encoded, tokenizer.pad_token_id, batch_size, progress)
    return logits.softmax(-1)


def load_classifier(model_dir: str) -> tuple[BertForSequenceClassification, WordPieceTokenizer]:
    """A fine-tuned classifier folder (or Hub name) -> (model in eval mode on the CPU, tokenizer)."""
    logger = logging.getLogger("bertlab")
    level = logger.level
    logger.setLevel(logging.ERROR)  # missing keys are checked below, in one line
    try:
        model = BertForSequenceClassification.from_pretrained(model_dir)
    finally:
        logger.setLevel(level)
    if any(k.startswith("classifier.") for k in model.loading_info["missing_keys"]):
        raise FinetuneError(f"{model_dir}: has no trained classification head; fine-tune it first (bertlab finetune)")
    tokenizer = WordPieceTokenizer.from_pretrained(model_dir)
    if model.config.id2label is None:
        model.config.id2label = {i: f"LABEL_{i}" for i in range(model.config.num_labels)}
        model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.eval()
    return model, tokenizer


def label_names(model) -> list[str]:
    id2label = model.config.id2label or {}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]


# --- metrics -------------------------------------------------------------------------------------


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor, num_labels: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in the labels or the predictions."""
    predictions, labels = predictions.long().view(-1), labels.long().view(-1)
    tp = torch.bincount(labels[predictions == labels], minlength=num_labels).double()
    predicted = torch.bincount(predictions, minlength=num_labels).double()
    actual = torch.bincount(labels, minlength=num_labels).double()
    present = (predicted + actual) > 0
    f1 = 2 * tp / (predicted + actual).clamp(min=1)  # = 2TP / (2TP + FP + FN)
    return float(f1[present].mean()) if present.any() else 0.0


def classification_metrics(logits: torch.Tensor, labels: Sequence[int]) -> dict[str, float]:
    """accuracy, mean cross-entropy loss and macro-F1 of (N, K) logits against label indices."""
    y = torch.as_tensor(list(labels), dtype=torch.long)
    logits = logits.float()
    predictions = logits.argmax(-1)
    return {
        "accuracy": float((predictions == y).float().mean()) if len(y) else 0.0,
        "loss": float(F.cross_entropy(logits, y)) if len(y) else 0.0,
        "macro_f1": macro_f1(predictions, y, logits.shape[-1]),
    }


# --- the run -------------------------------------------------------------------------------------


@dataclass
class FinetuneArgs:
    output: str
    model: str | None = None
    data: str = "rotten_tomatoes"
    data_dir: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    validation_split: float = 0.1
    from_scratch: bool = False
    preset: str | None = None
    dropout: float | None = None  # hidden and attention dropout; None: the checkpoint's or preset's
    tokenizer: str | None = None
    max_seq_length: int = 128
    long_text: str = "truncate"
    stride: int = 32
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum_steps: int = 1
    learning_rate: float | None = None  # None: 5e-5, or 5e-4 with from_scratch
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    eval_every: int | None = None  # None: about 10 evaluations per run
    save_every: int | None = None  # None: at every evaluation
    log_every: int | None = None
    patience: int | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    seed: int = 0
    amp: str = "auto"
    compile: bool = False
    resume: bool = False
    progress: bool | None = None


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def validate(args: FinetuneArgs) -> None:
    """Check the arguments and the output folder before any work or any file is written."""
    if args.from_scratch:
        if not args.preset and not args.model:
            raise FinetuneError("--from-scratch needs --preset (a size) or --model (whose config to copy)")
        if not args.model and not args.tokenizer:
            raise FinetuneError("--from-scratch --preset needs --tokenizer (or --model with a tokenizer)")
    elif not args.model:
        raise FinetuneError("--model is required (a model folder, minilm-l6, a Hub name), or use --from-scratch")
    elif args.preset:
        raise FinetuneError("--preset applies only with --from-scratch")
    if args.preset and args.preset not in PRESETS:
        raise FinetuneError(f"--preset {args.preset!r}: choose one of {', '.join(PRESETS)}")
    if args.long_text not in LONG_TEXT:
        raise FinetuneError(f"--long-text {args.long_text!r}: choose one of {', '.join(LONG_TEXT)}")
    if args.max_seq_length < 8:
        raise FinetuneError(f"--max-seq-length {args.max_seq_length}: must be at least 8")
    if args.stride < 0:
        raise FinetuneError(f"--stride {args.stride}: must not be negative")
    for name in ("batch_size", "eval_batch_size", "grad_accum_steps", "max_steps", "eval_every", "save_every",
                 "log_every", "patience", "max_train_examples", "max_eval_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise FinetuneError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    if args.epochs <= 0:
        raise FinetuneError(f"--epochs {args.epochs}: must be positive")
    if not 0.0 < args.validation_split < 1.0:
        raise FinetuneError(f"--validation-split {args.validation_split}: must be a fraction in (0, 1)")
    if not 0.0 <= args.warmup_ratio < 1.0:
        raise FinetuneError(f"--warmup-ratio {args.warmup_ratio}: must lie in [0, 1)")
    if args.learning_rate is not None and args.learning_rate <= 0:
        raise FinetuneError(f"--learning-rate {args.learning_rate}: must be positive")
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise FinetuneError(f"--dropout {args.dropout}: must lie in [0, 1)")
    if args.amp not in ("auto", "bf16", "fp16", "no"):
        raise FinetuneError(f"--amp {args.amp!r}: choose auto, bf16, fp16 or no")
    out = Path(args.output)
    if not _is_main():  # rank 0 checks (and then creates) the folder
        return
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--output {out}: exists and is not a folder")
    if args.resume:
        if not (out / "args.json").is_file():
            raise FinetuneError(f"--resume: {out} holds no fine-tuning run to resume (no args.json)")
    elif out.is_dir() and any(out.iterdir()):
        raise FinetuneError(f"--output {out}: folder exists and is not empty (use --resume to continue it)")


def _subset_indices(ids: Sequence[str], n: int, seed: int, salt: str) -> list[int]:
    """`n` rows chosen by a seeded hash of their ids (no library RNG), in their original order."""
    from .data.classification import stable_hash

    ranked = sorted(range(len(ids)), key=lambda i: (stable_hash(salt, seed, ids[i]), i))
    return sorted(ranked[:n])


@contextmanager
def _quiet_loading():
    logger = logging.getLogger("bertlab")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_model(args: FinetuneArgs, label_names: list[str], tokenizer: WordPieceTokenizer
                ) -> BertForSequenceClassification:
    """The classifier: pretrained weights (a fresh classifier on top) or a random initialisation."""
    from .checkpoint import CheckpointError, resolve

    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    torch.manual_seed(args.seed)  # the fresh classifier (or the whole model) is seeded
    dropout = {} if args.dropout is None else {"hidden_dropout_prob": args.dropout,
                                               "attention_probs_dropout_prob": args.dropout}
    if args.from_scratch:
        if args.preset:
            config = BertConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size,
                                            pad_token_id=tokenizer.pad_token_id, id2label=id2label, label2id=label2id,
                                            **dropout)
        else:
            folder = resolve(args.model)
            if not (folder / "config.json").is_file():
                raise CheckpointError(f"{folder}: no config.json here to copy the model's size from")
            config = BertConfig.from_json_file(folder / "config.json").replace(
                num_labels=len(label_names), id2label=id2label, label2id=label2id, problem_type=None, **dropout)
        return BertForSequenceClassification(config)
    with _quiet_loading():
        model = BertForSequenceClassification.from_pretrained(
            args.model, num_labels=len(label_names), id2label=id2label, label2id=label2id, problem_type=None,
            **dropout)
    missing = [k for k in model.loading_info["missing_keys"] if not k.startswith("classifier.")]
    if missing:
        logging.getLogger("bertlab").warning("%s: initialised fresh (not in the checkpoint): %s", args.model,
                                             ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    model.train()
    return model


def _load_tokenizer(args: FinetuneArgs) -> WordPieceTokenizer:
    from .checkpoint import CheckpointError

    source = args.output if args.resume else (args.tokenizer or args.model)
    try:
        return WordPieceTokenizer.from_pretrained(source)
    except CheckpointError as err:
        hint = "" if args.tokenizer or args.resume else "; give --tokenizer"
        raise CheckpointError(f"{err}{hint}") from None


def save_learning_curve(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss (left) and accuracy / macro-F1 (right) against the optimizer step, as a PNG."""
    from .plots import new_figure, plot_curves

    fig = new_figure((11, 3.8))
    left, right = fig.subplots(1, 2)
    plot_curves(history, ["train_loss", "eval_loss"], left, "loss")
    plot_curves(history, ["train_accuracy", "eval_accuracy", "eval_macro_f1"], right, "validation accuracy / macro-F1")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _train_accuracy(batch: dict[str, torch.Tensor], out) -> dict[str, float]:
    return {"accuracy": (out.logits.argmax(-1) == batch["labels"]).float().mean().item()}


def run_finetune(args: FinetuneArgs, log: Callable[[str], None] = print,
                 callbacks: Iterable[Callable] = ()) -> dict[str, Any]:
    """The whole pipeline; returns the run's summary (also written to finetune_summary.json).

    Everything that can fail on bad input (arguments, data, columns, labels, model, tokenizer,
    lengths) is checked before the output folder is created.
    """
    from .checkpoint import read_state_dict
    from .data.classification import load_classification
    from .train import Trainer, TrainConfig

    validate(args)
    out = Path(args.output)

    # 1. data: every row checked; label names fixed by the training split
    data = load_classification(args.data, args.data_dir, args.text_column, args.text_pair_column,
                               args.label_column, args.validation_split, args.seed)
    train_split, val_split = data.splits["train"], data.splits["validation"]
    if args.max_train_examples and args.max_train_examples < len(train_split):
        train_split = train_split.select(_subset_indices(train_split.ids, args.max_train_examples, args.seed, "train"))
        if len(set(train_split.labels)) < 2:
            raise FinetuneError(f"--max-train-examples {args.max_train_examples}: the slice holds only one class")
    if args.max_eval_examples and args.max_eval_examples < len(val_split):
        val_split = val_split.select(_subset_indices(val_split.ids, args.max_eval_examples, args.seed, "validation"))
    log(f"data: {data.name}, {len(data.label_names)} classes ({', '.join(data.label_names[:10])}"
        f"{', ...' if len(data.label_names) > 10 else ''}); train {len(train_split):,}, "
        f"validation {len(val_split):,}" + (f", test {len(data.splits['test']):,}" if "test" in data.splits else ""))
    if args.resume:
        saved = json.loads((out / "args.json").read_text(encoding="utf-8"))
        if saved.get("label_names") not in (None, data.label_names):
            raise FinetuneError(f"--resume: the run in {out} was trained on labels {saved['label_names']}, "
                                f"this data has {data.label_names}")

    # 2. tokenizer and model
    tokenizer = _load_tokenizer(args)
    model = build_model(args, data.label_names, tokenizer)
    config = model.config
    if tokenizer.vocab_size > config.vocab_size:
        raise FinetuneError(f"the tokenizer has {tokenizer.vocab_size:,} tokens but the model's embedding only "
                            f"{config.vocab_size:,}: they do not belong together")
    if args.max_seq_length > config.max_position_embeddings:
        raise FinetuneError(f"--max-seq-length {args.max_seq_length}: more than the model's "
                            f"{config.max_position_embeddings} positions")
    source = f"{args.preset} preset, random initialisation" if args.from_scratch and args.preset else (
        f"{args.model} (random initialisation)" if args.from_scratch else args.model)
    log(f"model: {source}, {model.num_parameters():,} parameters")

    # 3. token ids (dynamic padding later, per batch)
    enc = encode_texts(tokenizer, train_split.texts, train_split.pairs, args.max_seq_length, args.long_text, args.stride)
    train_set = [{"input_ids": ids, "token_type_ids": types, "labels": train_split.labels[d]}
                 for ids, types, d in zip(enc.input_ids, enc.token_type_ids, enc.doc)]
    val_enc = encode_texts(tokenizer, val_split.texts, val_split.pairs, args.max_seq_length, args.long_text, args.stride)
    if args.long_text == "chunk":
        log(f"chunks: {len(train_set):,} training windows from {len(train_split):,} texts")

    # Everything that can fail on bad input has run: from here on the run folder is written.
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            tokenizer.save(out)
        (out / "args.json").write_text(
            json.dumps({**asdict(args), "label_names": data.label_names}, indent=2, default=str) + "\n")

    def eval_fn(m) -> dict[str, float]:
        logits = encoded_logits(m, val_enc, tokenizer.pad_token_id, args.eval_batch_size, progress=False)
        return classification_metrics(logits, val_split.labels)

    learning_rate = args.learning_rate or (5e-4 if args.from_scratch else 5e-5)
    train_cfg = TrainConfig(
        output_dir=str(out), max_steps=args.max_steps, epochs=args.epochs, batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum_steps, learning_rate=learning_rate, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, seed=args.seed, amp=args.amp, compile=args.compile,
        log_every=args.log_every or 10,
        eval_every=args.eval_every, save_every=args.save_every, metric_for_best="accuracy", greater_is_better=True,
        early_stopping_patience=args.patience, group_by_length=True, progress=args.progress,
    )
    trainer = Trainer(model, train_set, PadCollator(tokenizer.pad_token_id), train_cfg, eval_fn=eval_fn,
                      metrics_fn=_train_accuracy, lengths=[len(x["input_ids"]) for x in train_set],
                      callbacks=callbacks)
    total = trainer.total_steps
    if args.eval_every is None:
        train_cfg.eval_every = max(1, total // 10)
    if args.save_every is None:
        train_cfg.save_every = train_cfg.eval_every
    if args.log_every is None:
        train_cfg.log_every = max(1, min(10, train_cfg.eval_every, total // 20 or 1))

    # Validation before any training: what the pretrained encoder and a random classifier give.
    summary_path = out / SUMMARY_FILE
    initial = None
    if args.resume and summary_path.is_file():
        initial = json.loads(summary_path.read_text(encoding="utf-8")).get("initial_validation")
    if initial is None:
        initial = trainer.evaluate()
        if _is_main():
            summary_path.write_text(json.dumps({"status": "running", "initial_validation": initial}, indent=2) + "\n")
    log(f"before training: validation accuracy {initial['accuracy']:.4f}, macro-F1 {initial['macro_f1']:.4f}")
    log(f"training: {total:,} steps of {args.batch_size * args.grad_accum_steps * trainer.world} examples, "
        f"learning rate {learning_rate:g}, evaluation every {train_cfg.eval_every} steps")

    started = time.perf_counter()
    result = trainer.train(resume=args.resume)
    train_seconds = time.perf_counter() - started

    # 4. the best model (by validation accuracy) becomes the run folder's model
    best = out / "best"
    if _is_main():
        if (best / "model.safetensors").is_file():
            for name in ("config.json", "model.safetensors"):
                os.replace(best / name, out / name)
            shutil.rmtree(best, ignore_errors=True)
        elif not (out / "model.safetensors").is_file():
            model.save_pretrained(out)
    trainer._barrier()
    state, _ = read_state_dict(out)
    model.load_state_dict(state, strict=False)

    best_record = next((r for r in result.history if r.get("step") == result.best_step and "eval_accuracy" in r), None)
    if best_record is not None:
        validation = {k[len("eval_"):]: v for k, v in best_record.items() if k.startswith("eval_")}
    else:
        validation = trainer.evaluate()
    summary = {
        "model": args.model, "from_scratch": args.from_scratch, "preset": args.preset,
        "data": data.name, "label_names": data.label_names,
        "examples": {"train": len(train_split), "validation": len(val_split),
                     **({"test": len(data.splits["test"])} if "test" in data.splits else {})},
        "train_windows": len(train_set), "max_seq_length": args.max_seq_length, "long_text": args.long_text,
        "stride": args.stride, "learning_rate": learning_rate, "batch_size": args.batch_size,
        "steps": result.step, "total_steps": total, "best_step": result.best_step,
        "stopped_early": result.stopped_early, "train_seconds": round(train_seconds, 1),
        "initial_validation": initial, "validation": validation, "parameters": model.num_parameters(),
    }
    if _is_main():
        history = [{"step": 0, **{f"eval_{k}": v for k, v in initial.items()}}] + list(result.history)
        save_learning_curve(history, out / CURVE_FILE)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --- command line --------------------------------------------------------------------------------


def cmd_finetune(args) -> int:
    fields = FinetuneArgs.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    summary = run_finetune(FinetuneArgs(**values), log=lambda msg: print(msg, flush=True))
    v = summary["validation"]
    print(f"done: {summary['steps']} steps in {summary['train_seconds']:.0f} s; best validation accuracy "
          f"{v.get('accuracy', float('nan')):.4f} (macro-F1 {v.get('macro_f1', float('nan')):.4f}) at step "
          f"{summary['best_step']}, before training {summary['initial_validation']['accuracy']:.4f}")
    print(f"model (the best one), tokenizer, metrics.jsonl, {CURVE_FILE} and {SUMMARY_FILE} in {args.output}")
    return 0


def _run_defaults(model_dir: str) -> dict[str, Any]:
    """max_seq_length / long_text / stride the model was fine-tuned with (from its args.json), if known."""
    path = Path(model_dir) / "args.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: saved[k] for k in ("max_seq_length", "long_text", "stride") if k in saved}


def cmd_predict(args) -> int:
    from .data.classification import load_texts

    texts: list[str] = []
    pairs: list[str] | None = None
    if args.file:
        if args.text:
            raise FinetuneError("give texts as arguments or --file, not both")
        texts, pairs, _ = load_texts(args.file, args.text_column, args.text_pair_column)
    elif args.text == ["-"]:
        texts = [line.rstrip("\r\n") for line in sys.stdin]
        while texts and not texts[-1].strip():
            texts.pop()
        for n, text in enumerate(texts, 1):
            if not text.strip():
                raise FinetuneError(f"<stdin>: line {n}: empty text")
    else:
        texts = list(args.text)
        for n, text in enumerate(texts, 1):
            if not text.strip():
                raise FinetuneError(f"text {n}: empty text")
    if not texts:
        raise FinetuneError("no texts to classify: give them as arguments, '-' for standard input, or --file")

    defaults = {"max_seq_length": 128, "long_text": "truncate", "stride": 32, **_run_defaults(args.model)}
    for key in defaults:
        if getattr(args, key) is not None:
            defaults[key] = getattr(args, key)
    model, tokenizer = load_classifier(args.model)
    if torch.cuda.is_available():
        model.cuda()
    probs = predict_proba(model, tokenizer, texts, pairs, batch_size=args.batch_size, progress=None, **defaults)
    names = label_names(model)
    for i, text in enumerate(texts):
        record: dict[str, Any] = {"text": text}
        if pairs is not None:
            record["text_pair"] = pairs[i]
        p = probs[i].tolist()
        record["label"] = names[max(range(len(p)), key=p.__getitem__)]
        record["probabilities"] = dict(zip(names, p))
        print(json.dumps(record, ensure_ascii=False))
    return 0


def add_subcommands(sub) -> None:
    """Register `bertlab finetune` and `bertlab predict` on the argparse subparsers `sub`."""
    import argparse

    class Help(argparse.ArgumentDefaultsHelpFormatter):
        """Shows a default only where there is one and the help text does not already say it."""

        def _get_help_string(self, action):
            if action.default is None or action.default is False or "default" in (action.help or ""):
                return action.help
            return super()._get_help_string(action)

    presets = list(PRESETS)
    p = sub.add_parser(
        "finetune", help="fine-tune BERT for text classification",
        description="Fine-tune a BERT checkpoint (or a randomly initialised one) to classify texts: evaluate on "
                    "the validation split as it trains, keep the best model, and leave a Hugging Face-format "
                    "folder (model, tokenizer, metrics.jsonl, learning curve, summary) that "
                    "transformers.pipeline('text-classification') also loads.",
        formatter_class=Help,
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", help="where to start: a `bertlab pretrain` run folder, a Hugging Face-format folder, "
                                   "the embedded 'minilm-l6', or a Hub name when online")
    g.add_argument("--from-scratch", action="store_true",
                   help="random initialisation (of --preset, or of --model's size) instead of pretrained weights: "
                        "shows what pretraining buys")
    g.add_argument("--preset", choices=presets, help="model size for --from-scratch")
    g.add_argument("--dropout", type=float, help="hidden and attention dropout (default: the model's own)")
    g.add_argument("--tokenizer", help="tokenizer folder or name (default: the --model folder's)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="rotten_tomatoes",
                   help="rotten_tomatoes (embedded), sst2, chnsenticorp, a CSV/TSV/JSON-lines/Parquet file, or a "
                        "folder of train/validation (or dev)/test files")
    g.add_argument("--data-dir", help="folder holding sst2/ and chnsenticorp/ (default: $BERTLAB_DATA_DIR)")
    g.add_argument("--text-column", help="column of the text (default: text, sentence, review, content, ...)")
    g.add_argument("--text-pair-column", help="column of a second text, for sentence-pair tasks")
    g.add_argument("--label-column", help="column of the label (default: label, labels, category, class, sentiment, ...)")
    g.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of train held out (seeded, stratified) when the data has no validation file")
    g.add_argument("--max-train-examples", type=int, help="train on this many examples only (quick runs)")
    g.add_argument("--max-eval-examples", type=int, help="evaluate on this many validation examples only")
    g = p.add_argument_group("sequences")
    g.add_argument("--max-seq-length", type=int, default=128, help="tokens per example, [CLS] and [SEP] included")
    g.add_argument("--long-text", choices=LONG_TEXT, default="truncate",
                   help="truncate: keep the first tokens; chunk: overlapping windows, trained on each, logits "
                        "averaged per document at evaluation and prediction")
    g.add_argument("--stride", type=int, default=32, help="tokens shared by neighbouring windows with --long-text chunk")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=float, default=3.0, help="passes over the training data (unless --max-steps)")
    g.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, default=32, help="examples per micro-batch (per process under torchrun)")
    g.add_argument("--eval-batch-size", type=int, default=64, help="examples per batch when evaluating")
    g.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--learning-rate", type=float, help="peak AdamW learning rate (default 5e-5, or 5e-4 with --from-scratch)")
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (not on biases/LayerNorm)")
    g.add_argument("--warmup-ratio", type=float, default=0.1, help="share of the steps spent warming up the learning rate")
    g.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "no"],
                   help="mixed precision; auto = bf16 or fp16 on a GPU, none on a CPU")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (worth it on a GPU, for long runs)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order, dropout and data slices")
    g = p.add_argument_group("evaluation and run folder")
    g.add_argument("--output", required=True, help="run folder to create (must be new or empty)")
    g.add_argument("--resume", action="store_true", help="continue the run in --output from its latest checkpoint")
    g.add_argument("--eval-every", type=int, help="evaluate on the validation split every N steps (default: 10 times per run)")
    g.add_argument("--patience", type=int, help="stop after this many evaluations without a better validation accuracy")
    g.add_argument("--save-every", type=int, help="checkpoint every N steps (default: at every evaluation)")
    g.add_argument("--log-every", type=int, help="log training loss and accuracy every N steps")
    p.set_defaults(func=cmd_finetune)

    q = sub.add_parser(
        "predict", help="classify texts with a fine-tuned model (JSON lines)",
        description="Classify texts with a fine-tuned model folder; print one JSON object per text: "
                    '{"text": ..., "label": ..., "probabilities": {label: p, ...}}.',
        formatter_class=Help,
    )
    q.add_argument("--model", required=True, help="a `bertlab finetune` output folder (or any BERT classifier folder)")
    q.add_argument("text", nargs="*", help="texts to classify; '-' reads one text per line from standard input")
    q.add_argument("--file", help="texts from a file: one per line, or a CSV/TSV/JSON-lines/Parquet table")
    q.add_argument("--text-column", help="column of the text in a table (default: text, sentence, ...)")
    q.add_argument("--text-pair-column", help="column of a second text in a table")
    q.add_argument("--batch-size", type=int, default=64, help="texts per batch")
    q.add_argument("--max-seq-length", type=int, help="tokens per text (default: what the model was fine-tuned with, or 128)")
    q.add_argument("--long-text", choices=LONG_TEXT, help="truncate or chunk (default: as fine-tuned, or truncate)")
    q.add_argument("--stride", type=int, help="window overlap with --long-text chunk (default: as fine-tuned, or 32)")
    q.set_defaults(func=cmd_predict)
