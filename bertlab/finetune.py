"""Fine-tuning BERT for text classification: `run_finetune(FinetuneArgs(...))` is what
`bertlab finetune` runs.

The run folder it leaves is a Hugging Face model folder that
`transformers.pipeline("text-classification", model=DIR)` loads as it is:

    config.json, model.safetensors   the BEST model on the validation split (not the last one),
                                     with id2label / label2id from the data's label names
    vocab.txt, tokenizer.json, ...   the tokenizer it was trained with
    metrics.jsonl                    training and validation records, one JSON object per line
    learning_curve.png               loss, accuracy and macro-F1 against the optimizer step
    finetune_summary.json            validation metrics (before training and of the best model),
                                     steps, training time, data sizes
    args.json                        the arguments of the run
    checkpoints/                     while the run is unfinished: its latest checkpoint, for --resume;
                                     a finished run keeps only the --keep-checkpoints newest (default
                                     none), so the folder holds the best model and its records

How texts become token ids (truncation, chunking of long texts) is `bertlab.encoding`; prediction
with the result is `bertlab.predict`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from .common import BertlabError, check_options, check_writable, claimed_run_folder, eval_mode, option, quiet_logger
from .config import FAST_PATHS, PRESETS, BertConfig
from .data.source import DataArgs
from .encoding import LONG_TEXT, PadCollator, choose_long_text, encode_texts, prediction_length, text_lengths
from .metrics import validation_metrics
from .model import BertForSequenceClassification
from .predict import encoded_logits
from .tokenizer import WordPieceTokenizer

SUMMARY_FILE = "finetune_summary.json"
CURVE_FILE = "learning_curve.png"
AMP = ("auto", "bf16", "fp16", "no")


class FinetuneError(BertlabError):
    """Arguments or inputs that cannot make a fine-tuning run."""


@dataclass(kw_only=True)
class FinetuneArgs(DataArgs):
    """The arguments of a fine-tuning run; `bertlab finetune`'s flags are made from these fields."""

    model: str | None = option(None, "where to start: a `bertlab pretrain` run folder, a Hugging Face-format "
                               "folder, the embedded 'minilm-l6', or a Hub name when online", group="model")
    from_scratch: bool = option(False, "random initialisation (of --preset, or of --model's size) instead of "
                                "pretrained weights: shows what pretraining buys", group="model")
    preset: str | None = option(None, "model size for --from-scratch", group="model", choices=tuple(PRESETS))
    dropout: float | None = option(None, "hidden and attention dropout (default: the model's own)", group="model")
    tokenizer: str | None = option(None, "tokenizer folder or name (default: the --model folder's)", group="model")
    max_train_examples: int | None = option(None, "train on this many examples only (quick runs)", group="data", minimum=1)
    max_eval_examples: int | None = option(None, "evaluate on this many validation examples only", group="data", minimum=1)
    max_seq_length: int = option(128, "tokens per example, [CLS] and [SEP] included", group="sequences", minimum=8)
    long_text: str = option("auto", "texts longer than --max-seq-length: truncate keeps the first tokens; "
                            "head-tail the first quarter and the last three quarters; chunk: overlapping windows, "
                            "trained on each, logits averaged per document at evaluation and prediction; auto: "
                            "truncate when at most 10% of training texts are too long, else head-tail",
                            group="sequences", choices=("auto", *LONG_TEXT))
    stride: int = option(32, "tokens shared by neighbouring windows with --long-text chunk", group="sequences", minimum=0)
    epochs: float = option(3.0, "passes over the training data (unless --max-steps)", group="training")
    max_steps: int | None = option(None, "optimizer steps (overrides --epochs)", group="training", minimum=1)
    batch_size: int = option(32, "examples per batch (per process under torchrun); on a CPU, a batch whose "
                             "activations would not fit in about 600 MB runs as micro-batches", group="training", minimum=1)
    eval_batch_size: int = option(64, "examples per batch when evaluating", group="training", minimum=1)
    grad_accum_steps: int = option(1, "batches accumulated per optimizer step", group="training", minimum=1)
    learning_rate: float | None = option(None, "peak AdamW learning rate (default: 5e-4 with --from-scratch; "
                                         "1e-4 for a pretrained model of hidden size under 768, such as "
                                         "MiniLM; 5e-5 for BERT-base and larger)", group="training")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases/LayerNorm)", group="training")
    warmup_ratio: float = option(0.1, "share of the steps spent warming up the learning rate", group="training")
    amp: str = option("auto", "mixed precision; auto = bf16 or fp16 on a GPU, none on a CPU", group="training",
                      choices=AMP)
    compile: bool = option(False, "torch.compile the model (worth it on a GPU, for long runs)", group="training")
    seed: int = option(0, "seed of initialisation, data order, dropout and data slices", group="training")
    output: str = option(help="run folder to create (must be new or empty)", group="evaluation and run folder")
    resume: bool = option(False, "continue the run in --output from its latest checkpoint",
                          group="evaluation and run folder")
    eval_every: int | None = option(None, "evaluate on the validation split every N steps (default: 10 times per "
                                    "run)", group="evaluation and run folder", minimum=1)
    patience: int | None = option(None, "stop after this many evaluations without a better validation accuracy",
                                  group="evaluation and run folder", minimum=1)
    save_every: int | None = option(None, "checkpoint every N steps (default: at every evaluation)",
                                    group="evaluation and run folder", minimum=1)
    keep_checkpoints: int = option(0, "checkpoints left in the run folder when the run has finished (0: the best "
                                   "model only; an unfinished run always keeps its latest one, for --resume)",
                                   group="evaluation and run folder", minimum=0)
    log_every: int | None = option(None, "log training loss and accuracy every N steps (default: 10, fewer on "
                                   "short runs)", group="evaluation and run folder", minimum=1)
    progress: bool | None = None  # a progress bar: None shows one on a terminal only

    def validate(self) -> None:
        """Check the values, before any work or any file is written."""
        if self.from_scratch:
            if not self.preset and not self.model:
                raise FinetuneError("--from-scratch needs --preset (a size) or --model (whose config to copy)")
            if not self.model and not self.tokenizer:
                raise FinetuneError("--from-scratch --preset needs --tokenizer (or --model with a tokenizer)")
        elif not self.model:
            raise FinetuneError("--model is required (a model folder, minilm-l6, a Hub name), or use --from-scratch")
        elif self.preset:
            raise FinetuneError("--preset applies only with --from-scratch")
        check_options(self, FinetuneError)
        if self.epochs <= 0:
            raise FinetuneError(f"--epochs {self.epochs}: must be positive")
        if not 0.0 < self.validation_split < 1.0:
            raise FinetuneError(f"--validation-split {self.validation_split}: must be a fraction in (0, 1)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise FinetuneError(f"--warmup-ratio {self.warmup_ratio}: must lie in [0, 1)")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise FinetuneError(f"--learning-rate {self.learning_rate}: must be positive")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise FinetuneError(f"--dropout {self.dropout}: must lie in [0, 1)")


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def validate(args: FinetuneArgs) -> None:
    """Check the arguments and the output folder before any work or any file is written."""
    args.validate()
    out = Path(args.output)
    if not _is_main():  # rank 0 checks (and then creates) the folder
        return
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--output {out}: exists and is not a folder")
    if args.resume:
        if not (out / "args.json").is_file():
            raise FinetuneError(f"--resume: {out} holds no fine-tuning run to resume (no args.json)")
        if _finished(out):
            raise FinetuneError(f"--resume: the run in {out} has finished; start a new one with another --output")
    elif out.is_dir() and any(out.iterdir()):
        raise FinetuneError(f"--output {out}: folder exists and is not empty (use --resume to continue it)")
    check_writable(out)


def _finished(out: Path) -> bool:
    try:
        return json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8")).get("status") == "finished"
    except (OSError, ValueError, AttributeError):
        return False


def prune_checkpoints(out: Path, keep: int) -> None:
    """A finished run: keep the `keep` newest checkpoints, or with 0 no checkpoints folder at all."""
    from .train import CHECKPOINTS

    root = out / CHECKPOINTS
    if not root.is_dir():
        return
    if keep == 0:
        shutil.rmtree(root)
        return
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for p in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(p)


def subset_indices(ids: Sequence[str], n: int, seed: int, salt: str) -> list[int]:
    """`n` rows chosen by a seeded hash of their ids (no library RNG), in their original order."""
    from .data.classification import stable_hash

    ranked = sorted(range(len(ids)), key=lambda i: (stable_hash(salt, seed, ids[i]), i))
    return sorted(ranked[:n])


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
                                            **dropout, **FAST_PATHS)
        else:
            folder = resolve(args.model)
            if not (folder / "config.json").is_file():
                raise CheckpointError(f"{folder}: no config.json here to copy the model's size from")
            config = BertConfig.from_json_file(folder / "config.json").replace(
                num_labels=len(label_names), id2label=id2label, label2id=label2id, problem_type=None, **dropout,
                **FAST_PATHS)
        return BertForSequenceClassification(config)
    with quiet_logger():
        model = BertForSequenceClassification.from_pretrained(
            args.model, num_labels=len(label_names), id2label=id2label, label2id=label2id, problem_type=None,
            **dropout, **FAST_PATHS)  # the speed paths of bertlab.fast, saved with the model
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
        # a model folder that exists but holds no tokenizer: say where one can come from
        has_folder = not args.tokenizer and not args.resume and Path(str(source)).expanduser().is_dir()
        hint = "; give --tokenizer" if has_folder else ""
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


# On a CPU, a micro-batch's saved activations are kept under this many bytes (estimated by
# `activation_bytes`); what does not fit is accumulated over several micro-batches.
ACTIVATION_BUDGET = 600 * 2**20


def activation_bytes(config: BertConfig, length: int) -> int:
    """Rough fp32 bytes that training saves for backward, per example of `length` tokens:
    about a dozen (T, hidden) tensors, the feed-forward's two (T, intermediate) and attention's
    probabilities before and after dropout (heads, T, T) per layer. For MiniLM at 32 x 128 tokens it
    gives 1.1 GB; resident memory grew by 1.4 GB in its first forward pass (measured on 2 CPU cores)."""
    per_layer = length * (12 * config.hidden_size + 2 * config.intermediate_size) \
        + 2.25 * config.num_attention_heads * length * length
    return int(4 * config.num_hidden_layers * per_layer)


def micro_batches(batch_size: int, grad_accum_steps: int, length: int, config: BertConfig,
                  cuda: bool | None = None) -> tuple[int, int]:
    """(micro-batch, accumulation steps) giving `batch_size * grad_accum_steps` examples per step.

    On a CPU, a batch whose activations (`activation_bytes` of its longest `length`) would pass
    ACTIVATION_BUDGET is split into equal micro-batches whose gradients are accumulated: the same
    examples per step and the same mean gradient, in bounded memory (MiniLM at 32 x 128 tokens: two
    micro-batches of 16; peak resident memory of a 300-step run 2.6 -> 2.0 GB, measured). On a GPU the
    batch is kept as given."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda or batch_size * activation_bytes(config, length) <= ACTIVATION_BUDGET:
        return batch_size, grad_accum_steps
    cap = max(1, ACTIVATION_BUDGET // activation_bytes(config, length))
    micro = max(d for d in range(1, batch_size + 1) if batch_size % d == 0 and d <= cap)
    return micro, grad_accum_steps * (batch_size // micro)


def default_learning_rate(from_scratch: bool, config: BertConfig) -> float:
    """bertlab's default peak learning rate (its own choice). BERT fine-tuned BERT-base and -large at
    5e-5, 3e-5 or 2e-5 (Devlin et al., 2019, appendix A.3); the grid of the small BERTs of Turc et
    al. (2019) adds 1e-4 and 3e-4 (google-research/bert README). bertlab takes 1e-4 for pretrained
    models smaller than BERT-base, the rate the book's MiniLM runs use (chapter 08, make results);
    on long IMDb reviews, after 300 steps, MiniLM's best validation accuracy was 0.833 at 1e-4 and
    0.825 at 5e-5, one seed each (results/long_documents.json). A model from random weights: 5e-4."""
    if from_scratch:
        return 5e-4
    return 1e-4 if config.hidden_size < 768 else 5e-5


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process so far, in MB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import sys

    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # bytes on macOS, KB on Linux


def _train_accuracy(batch: dict[str, torch.Tensor], out) -> dict[str, torch.Tensor]:
    return {"accuracy": (out.logits.argmax(-1) == batch["labels"]).float().mean()}  # read at log steps only


def run_finetune(args: FinetuneArgs, log: Callable[[str], None] = print,
                 callbacks: Iterable[Callable] = ()) -> dict[str, Any]:
    """The whole pipeline; returns the run's summary (also written to finetune_summary.json).

    Everything that can fail on bad input (arguments, data, columns, labels, model, tokenizer,
    lengths) is checked before the output folder is created.
    """
    from .checkpoint import read_state_dict
    from .train import TrainConfig, Trainer, resume_line

    validate(args)
    out = Path(args.output)

    # 1. data: every row checked; label names fixed by the training split
    data = args.load_data(args.seed)
    train_split, val_split = data.splits["train"], data.splits["validation"]
    if args.max_train_examples and args.max_train_examples < len(train_split):
        train_split = train_split.select(subset_indices(train_split.ids, args.max_train_examples, args.seed, "train"))
        if len(set(train_split.labels)) < 2:
            raise FinetuneError(f"--max-train-examples {args.max_train_examples}: the slice holds only one class")
    if args.max_eval_examples and args.max_eval_examples < len(val_split):
        val_split = val_split.select(subset_indices(val_split.ids, args.max_eval_examples, args.seed, "validation"))
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

    # 3. token ids (dynamic padding later, per batch); --long-text auto is resolved on the training texts
    long_text, predict_length = args.long_text, args.max_seq_length
    if long_text == "auto":
        long_text, said = choose_long_text(text_lengths(tokenizer, train_split.texts, train_split.pairs),
                                           args.max_seq_length)
        predict_length = prediction_length(long_text, args.max_seq_length, config.max_position_embeddings)
        log(said + (f"; evaluate and predict read {predict_length} tokens" if predict_length != args.max_seq_length
                    else ""))
    enc = encode_texts(tokenizer, train_split.texts, train_split.pairs, args.max_seq_length, long_text, args.stride)
    train_set = [{"input_ids": ids, "token_type_ids": types, "labels": train_split.labels[d]}
                 for ids, types, d in zip(enc.input_ids, enc.token_type_ids, enc.doc)]
    val_enc = encode_texts(tokenizer, val_split.texts, val_split.pairs, args.max_seq_length, long_text, args.stride)
    if long_text == "chunk":
        log(f"chunks: {len(train_set):,} training windows from {len(train_split):,} texts")
    if enc.truncated and args.long_text != "auto":  # auto's line above has counted them
        kept = "lose their end (--long-text head-tail or chunk keep it)" if long_text == "truncate" else \
            "lose their middle"
        log(f"{long_text}: {enc.truncated:,} of {len(train_split):,} training texts ({enc.truncated / len(train_split):.1%}) "
            f"are longer than --max-seq-length {args.max_seq_length} and {kept}")
    longest = max(map(len, enc.input_ids))
    micro, accum = micro_batches(args.batch_size, args.grad_accum_steps, longest, config)
    if micro != args.batch_size:
        log(f"memory: batches of {args.batch_size} run as {accum // args.grad_accum_steps} micro-batches of {micro} "
            f"(gradients accumulated; texts of up to {longest} tokens on a CPU)")

    # Everything that can fail on bad input has run: from here on the run folder is written, by this run only.
    with claimed_run_folder(out, args.resume, _is_main()) as orphans:
        if orphans:
            log(f"removed what an interrupted run left: {', '.join(orphans)}")
        if args.resume:
            log(resume_line(out))
        if _is_main():
            out.mkdir(parents=True, exist_ok=True)
            if not args.resume:
                tokenizer.save(out)
            # what the run chose (--long-text auto resolved) is what evaluate and predict read back
            (out / "args.json").write_text(json.dumps(
                {**asdict(args), "long_text": long_text, "long_text_given": args.long_text,
                 "prediction": {"max_seq_length": predict_length, "long_text": long_text, "stride": args.stride},
                 "label_names": data.label_names}, indent=2, default=str) + "\n")

        def eval_fn(m) -> dict[str, float]:
            logits = encoded_logits(m, val_enc, tokenizer.pad_token_id, args.eval_batch_size, progress=False)
            return validation_metrics(val_split.labels, logits)

        learning_rate = args.learning_rate or default_learning_rate(args.from_scratch, config)
        train_cfg = TrainConfig(
            output_dir=str(out), max_steps=args.max_steps, epochs=args.epochs, batch_size=micro,
            grad_accum_steps=accum, learning_rate=learning_rate, weight_decay=args.weight_decay,
            warmup_ratio=args.warmup_ratio, seed=args.seed, amp=args.amp, compile=args.compile,
            # unset intervals: ten evaluations a run, a checkpoint at each, about 20 log lines (at most every 10 steps)
            log_every=args.log_every, eval_every=args.eval_every, evals_per_run=10, save_every=args.save_every,
            save_with_eval=True, metric_for_best="accuracy", greater_is_better=True,
            keep_checkpoints=max(1, args.keep_checkpoints), early_stopping_patience=args.patience,
            group_by_length=True, progress=args.progress,
        )
        trainer = Trainer(model, train_set, PadCollator(tokenizer.pad_token_id), train_cfg, eval_fn=eval_fn,
                          metrics_fn=_train_accuracy, lengths=[len(x["input_ids"]) for x in train_set],
                          callbacks=callbacks)
        total = trainer.total_steps

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
        log(f"training: {total:,} steps of {micro * accum * trainer.world} examples, "
            f"learning rate {learning_rate:g}, evaluation every {trainer.eval_every} steps")

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
        validation_at_prediction = None
        if predict_length != args.max_seq_length:  # the best model, read as evaluate and predict will read texts
            long_enc = encode_texts(tokenizer, val_split.texts, val_split.pairs, predict_length, long_text, args.stride)
            with eval_mode(model):
                logits = encoded_logits(model, long_enc, tokenizer.pad_token_id, args.eval_batch_size, progress=False)
            validation_at_prediction = validation_metrics(val_split.labels, logits)
            log(f"validation accuracy of the best model at {predict_length} tokens (as evaluate and predict read "
                f"texts): {validation_at_prediction['accuracy']:.4f}, at {args.max_seq_length}: "
                f"{validation['accuracy']:.4f}")
        summary = {
            "model": args.model, "from_scratch": args.from_scratch, "preset": args.preset,
            "data": data.name, "label_names": data.label_names,
            "examples": {"train": len(train_split), "validation": len(val_split),
                         **({"test": len(data.splits["test"])} if "test" in data.splits else {})},
            "train_windows": len(train_set), "max_seq_length": args.max_seq_length, "long_text": long_text,
            "prediction_max_seq_length": predict_length, "validation_at_prediction": validation_at_prediction,
            "stride": args.stride, "learning_rate": learning_rate, "batch_size": args.batch_size,
            "steps": result.step, "total_steps": total, "best_step": result.best_step,
            "stopped_early": result.stopped_early, "train_seconds": round(train_seconds, 1),
            "peak_memory_mb": peak_memory_mb(),
            "initial_validation": initial, "validation": validation, "parameters": model.num_parameters(),
            "status": "finished",
        }
        if _is_main():
            history = [{"step": 0, **{f"eval_{k}": v for k, v in initial.items()}}] + list(result.history)
            save_learning_curve(history, out / CURVE_FILE)
            summary_path.write_text(json.dumps(summary, indent=2) + "\n")
            prune_checkpoints(out, args.keep_checkpoints)  # after the summary: a crash before it can still resume
        return summary


def report_lines(summary: dict[str, Any], args: FinetuneArgs) -> list[str]:
    """What `bertlab finetune` prints at the end of a run."""
    v, nan = summary["validation"], float("nan")
    peak = summary.get("peak_memory_mb")
    return [f"done: {summary['steps']} steps in {summary['train_seconds']:.0f} s; best validation accuracy "
            f"{v.get('accuracy', nan):.4f} (macro-F1 {v.get('macro_f1', nan):.4f}) at step {summary['best_step']}, "
            f"before training {summary['initial_validation']['accuracy']:.4f}"
            + (f"; peak memory {peak / 1024:.1f} GB" if peak else ""),
            f"model (the best one), tokenizer, metrics.jsonl, {CURVE_FILE} and {SUMMARY_FILE} in {args.output}"]
