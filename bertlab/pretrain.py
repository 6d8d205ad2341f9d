"""Pretraining from raw text: tokenizer, NSP pairs, dynamic masks, the training loop, evaluation.

`run_pretraining(PretrainArgs(...))` is what `bertlab pretrain` runs. The run folder it leaves:

    config.json, model.safetensors   the final BertForPreTraining (Hugging Face format)
    vocab.txt, tokenizer.json, ...   the WordPiece tokenizer it was trained with
    metrics.jsonl                    one JSON record per logged step (train and held-out metrics)
    pretraining_curves.png           loss and accuracy curves
    summary.json                     the final held-out metrics, tokens/s, data statistics
    args.json                        the arguments of the run
    checkpoints/                     the latest checkpoints, for --resume
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .common import BertlabError, check_options, check_writable, claimed_run_folder, eval_mode, option
from .config import FAST_PATHS, PRESETS, BertConfig
from .model import BertForPreTraining
from .tokenizer import SPECIAL_TOKENS, TokenizerError, WordPieceTokenizer


class PretrainError(BertlabError):
    """Arguments or inputs that cannot make a pretraining run."""


@dataclass(kw_only=True)
class PretrainArgs:
    """The arguments of a pretraining run; `bertlab pretrain`'s flags are made from these fields."""

    corpus: list[str] = option(["news"], "'news' (the embedded 2-million-word news corpus), 'reviews' (Rotten Tomatoes' "
                               "training snippets and film synopses, unlabelled), text files or folders "
                               "(documents separated by blank lines, or one per file), or a Hub data set "
                               "(wikitext, hf:NAME[:CONFIG])", group="data", nargs="+")
    data_dir: str | None = option(None, "folder for relative corpus paths (default: $BERTLAB_DATA_DIR)", group="data")
    heldout: float = option(0.01, "documents held out for evaluation: a fraction (<1) or a count", group="data")
    max_eval_examples: int = option(1000, "held-out pairs evaluated", group="data", minimum=1)
    tokenizer: str | None = option(None, "use this tokenizer folder (vocab.txt / tokenizer.json) instead of "
                                   "training one", group="tokenizer")
    vocab_size: int = option(8000, "WordPiece vocabulary size to train", group="tokenizer")
    lowercase: bool = option(True, "keep case and accents (default: lower-case, strip accents)", group="tokenizer",
                             flag="--cased")
    limit_alphabet: int = option(1000, "characters kept whole, the most frequent first; any other becomes [UNK] "
                                 "(raise it for Chinese, where every character is a token: e.g. 6000)",
                                 group="tokenizer", minimum=1)
    max_seq_length: int = option(128, "tokens per example, [CLS] and [SEP]s included", group="examples")
    short_seq_prob: float = option(0.1, "probability of a shorter target length", group="examples")
    dupe_factor: int = option(1, "passes over the corpus when building pairs", group="examples", minimum=1)
    masked_lm_prob: float = option(0.15, "share of tokens chosen for the MLM loss", group="examples")
    whole_word_mask: bool = option(False, "choose whole words, not single pieces", group="examples")
    preset: str = option("tiny", "model size", group="model and training", choices=tuple(PRESETS))
    dropout: float | None = option(None, "hidden and attention dropout (default: the preset's 0.1; 0 often trains "
                                   "small models faster)", group="model and training")
    batch_size: int = option(32, "examples per step (per process under torchrun)", group="model and training", minimum=1)
    grad_accum_steps: int = option(1, "micro-batches per optimizer step", group="model and training", minimum=1)
    steps: int = option(1000, "optimizer steps", group="model and training", minimum=1)
    learning_rate: float = option(5e-4, "peak AdamW learning rate", group="model and training")
    warmup_steps: int | None = option(None, "linear warm-up steps (default: 10% of --steps)",
                                      group="model and training")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases/LayerNorm)", group="model and training")
    amp: str = option("auto", "mixed precision; auto = bf16 or fp16 on a GPU, none on a CPU",
                      group="model and training", choices=("auto", "bf16", "fp16", "no"))
    compile: bool = option(False, "torch.compile the model", group="model and training")
    seed: int = option(0, "seed of data order, masks and initialisation", group="model and training")
    max_minutes: float | None = option(None, "stop after this many minutes and save", group="model and training")
    output: str = option(help="run folder to create (must be new or empty)", group="run folder")
    resume: bool = option(False, "continue the run in --output from its latest checkpoint", group="run folder")
    save_every: int | None = option(None, "checkpoint every N steps", group="run folder", minimum=1)
    keep_checkpoints: int = option(2, "newest checkpoints kept (raise it to fine-tune from points along the run)",
                                   group="run folder", minimum=1)
    eval_every: int | None = option(None, "evaluate on held-out data every N steps (default: at the end)",
                                    group="run folder", minimum=1)
    log_every: int = option(10, "log training metrics every N steps", group="run folder", minimum=1)
    num_workers: int = option(0, "data-loading worker processes", group="run folder", minimum=0)
    tensorboard: bool = option(False, "also log to TensorBoard (needs tensorboard)", group="run folder")
    progress: bool | None = None  # a progress bar: None shows one on a terminal only
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Check the values, before any work or any file is written."""
        check_options(self, PretrainError)
        positions = BertConfig.from_preset(self.preset).max_position_embeddings
        if not 8 <= self.max_seq_length <= positions:
            raise PretrainError(
                f"--max-seq-length {self.max_seq_length}: must lie between 8 and the model's {positions} positions"
            )
        if self.tokenizer is None and self.vocab_size < len(SPECIAL_TOKENS) + 50:
            raise PretrainError(
                f"--vocab-size {self.vocab_size}: too small; the {len(SPECIAL_TOKENS)} special tokens and an "
                f"alphabet need at least {len(SPECIAL_TOKENS) + 50}"
            )
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise PretrainError(f"--dropout {self.dropout}: must lie in [0, 1)")
        if not (0.0 < self.heldout < 1.0 or (self.heldout >= 1 and self.heldout == int(self.heldout))):
            raise PretrainError(f"--heldout {self.heldout:g}: a fraction in (0, 1) or a whole number of documents")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise PretrainError(f"--masked-lm-prob {self.masked_lm_prob}: must lie in (0, 1)")


def validate(args: PretrainArgs) -> None:
    """Check the arguments and the output folder before any work or any file is written."""
    args.validate()
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise PretrainError(f"--output {out}: exists and is not a folder")
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 creates the folder
    if first_rank and out.is_dir() and any(out.iterdir()) and not args.resume:
        raise PretrainError(f"--output {out}: folder exists and is not empty (use --resume to continue it)")
    if args.resume and not (out / "tokenizer.json").is_file():
        raise PretrainError(f"--resume: {out} holds no run to resume (no tokenizer.json)")
    check_writable(out)


def report_lines(summary: dict[str, Any], args: PretrainArgs) -> list[str]:
    """What `bertlab pretrain` prints at the end of a run."""
    held = summary["heldout"]
    names = {"mlm_loss": "held-out MLM loss", "mlm_accuracy": "MLM accuracy", "nsp_accuracy": "NSP accuracy"}
    scores = ", ".join(f"{name} {held[key]:.3f}" for key, name in names.items() if key in held)
    speed = f"{summary['tokens_per_s'] or 0:,.0f} tokens/s"
    return [f"done: {summary['steps']} steps in {summary['train_seconds']:.0f} s ({speed}); {scores}",
            f"model, tokenizer, metrics.jsonl and pretraining_curves.png in {args.output}"]


def pretraining_metrics(batch: dict[str, torch.Tensor], out) -> dict[str, torch.Tensor]:
    """MLM accuracy at the masked positions and NSP accuracy of one batch (tensors on the batch's
    device: the Trainer reads them on the CPU only when it logs)."""
    metrics = {}
    if out.masked_positions is not None and out.mlm_predictions is not None and out.mlm_predictions.numel():
        targets = batch["labels"][out.masked_positions]
        metrics["mlm_accuracy"] = (out.mlm_predictions == targets).float().mean()
    if "next_sentence_label" in batch:
        metrics["nsp_accuracy"] = (out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]).float().mean()
    return metrics


@torch.no_grad()
def evaluate_pretraining(model: BertForPreTraining, dataset, collate, batch_size: int = 64) -> dict[str, float]:
    """Held-out MLM loss (per masked token), accuracy and perplexity, and NSP accuracy and loss."""
    device = next(model.parameters()).device
    mlm_loss = mlm_correct = masked = nsp_loss = nsp_correct = n = 0.0
    with eval_mode(model):
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)  # the MLM head at the masked positions only: mean loss and argmax there
            targets = batch["labels"][out.masked_positions]
            mlm_loss += out.mlm_loss.item() * targets.numel()
            mlm_correct += (out.mlm_predictions == targets).sum().item()
            masked += targets.numel()
            nsp = batch["next_sentence_label"]
            nsp_loss += F.cross_entropy(out.seq_relationship_logits.float(), nsp, reduction="sum").item()
            nsp_correct += (out.seq_relationship_logits.argmax(-1) == nsp).sum().item()
            n += nsp.numel()
    loss = mlm_loss / max(masked, 1)
    return {
        "mlm_loss": loss,
        "mlm_accuracy": mlm_correct / max(masked, 1),
        "perplexity": math.exp(min(loss, 50.0)),
        "nsp_loss": nsp_loss / max(n, 1),
        "nsp_accuracy": nsp_correct / max(n, 1),
        "masked_tokens": int(masked),
    }


@torch.no_grad()
def fill_mask(model, tokenizer: WordPieceTokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] in `text`: the `top_k` most likely tokens and their probabilities."""
    batch = tokenizer([text])
    positions = (batch["input_ids"][0] == tokenizer.mask_token_id).nonzero().squeeze(1)
    if positions.numel() == 0:
        raise PretrainError(f"no [MASK] token in {text!r}")
    device = next(model.parameters()).device
    with eval_mode(model):
        out = model(**{k: v.to(device) for k, v in batch.items()})
    logits = out.prediction_logits if out.prediction_logits is not None else out.logits  # (1, T, V)
    probs = logits[0, positions].float().softmax(-1)  # (M, V)
    top = probs.topk(top_k, dim=-1)
    return [
        [(tokenizer.convert_ids_to_tokens([int(i)])[0], float(p)) for p, i in zip(ps, ids)]
        for ps, ids in zip(top.values, top.indices)
    ]


def run_pretraining(args: PretrainArgs, log=print) -> dict[str, Any]:
    """The whole pipeline; returns the run's summary (also written to summary.json)."""
    from .data import MLMCollator, build_pretraining_dataset, corpus_stats, load_corpus, split_heldout
    from .plots import save_pretraining_curves
    from .tokenizer import train_wordpiece
    from .train import TrainConfig, Trainer, resume_line

    validate(args)
    out = Path(args.output)
    started = time.perf_counter()

    # 1. text: documents of sentences, a deterministic held-out slice of documents
    documents = load_corpus(list(args.corpus), args.data_dir)
    stats = corpus_stats(documents)
    if stats["documents"] - stats["empty_documents"] < 3:
        raise PretrainError(f"--corpus {' '.join(args.corpus)}: needs at least 3 non-empty documents, found "
                            f"{stats['documents'] - stats['empty_documents']}")
    try:
        train_docs, heldout_docs = split_heldout(documents, args.heldout if args.heldout < 1 else int(args.heldout),
                                                 args.seed)
    except ValueError as err:  # more documents held out than the corpus can spare
        raise PretrainError(f"--heldout {args.heldout:g}: {err}") from None
    log(f"corpus: {stats['documents']:,} documents, {stats['sentences']:,} sentences, {stats['words']:,} words "
        f"({len(heldout_docs):,} documents held out)")

    # 2. tokenizer: trained on the training documents only (or given, or the one of the run resumed)
    if args.resume:
        tokenizer = WordPieceTokenizer.from_pretrained(out)
    elif args.tokenizer:
        tokenizer = WordPieceTokenizer.from_pretrained(args.tokenizer)
    else:
        try:
            tokenizer = train_wordpiece(train_docs, vocab_size=args.vocab_size, lowercase=args.lowercase,
                                        limit_alphabet=args.limit_alphabet)
        except TokenizerError as err:  # e.g. a vocabulary too small for the alphabet
            raise PretrainError(f"--vocab-size {args.vocab_size} / --limit-alphabet {args.limit_alphabet}: {err}") from None
    log(f"tokenizer: {tokenizer.vocab_size:,} WordPiece tokens")

    # 3. NSP pairs; masks are drawn afresh each epoch by the collator
    train_set = build_pretraining_dataset(train_docs, tokenizer, args.max_seq_length, args.short_seq_prob,
                                          args.dupe_factor, args.seed)
    eval_set = build_pretraining_dataset(heldout_docs, tokenizer, args.max_seq_length, args.short_seq_prob, 1,
                                         args.seed + 1)
    eval_set.instances = eval_set.instances[: args.max_eval_examples]
    if len(train_set) < args.batch_size:
        raise PretrainError(f"--corpus: only {len(train_set)} training examples, fewer than one batch of "
                            f"{args.batch_size}")
    data_stats = train_set.stats()
    log(f"examples: {len(train_set):,} training pairs ({data_stats['tokens']:,} tokens), "
        f"{len(eval_set):,} held-out pairs")
    collate = MLMCollator(tokenizer, masked_lm_prob=args.masked_lm_prob, whole_word_mask=args.whole_word_mask,
                          seed=args.seed)
    eval_collate = MLMCollator(tokenizer, masked_lm_prob=args.masked_lm_prob, seed=args.seed + 1)

    # 4. the model
    torch.manual_seed(args.seed)
    dropout = {} if args.dropout is None else {"hidden_dropout_prob": args.dropout,
                                               "attention_probs_dropout_prob": args.dropout}
    config = BertConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size,
                                    pad_token_id=tokenizer.pad_token_id, **dropout, **FAST_PATHS)  # bertlab.fast
    model = BertForPreTraining(config)
    log(f"model: {args.preset} preset, {model.num_parameters():,} parameters")

    # Everything that can fail on bad input has run: from here on the run folder is written, by this run only.
    with claimed_run_folder(out, args.resume, os.environ.get("RANK", "0") == "0") as orphans:
        if orphans:
            log(f"removed what an interrupted run left: {', '.join(orphans)}")
        if args.resume:
            log(resume_line(out))
        out.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            tokenizer.save(out)
        (out / "args.json").write_text(json.dumps(asdict(args), indent=2, default=str) + "\n")

        train_cfg = TrainConfig(
            output_dir=str(out), max_steps=args.steps, batch_size=args.batch_size,
            grad_accum_steps=args.grad_accum_steps, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps, seed=args.seed, amp=args.amp, compile=args.compile,
            log_every=args.log_every, eval_every=args.eval_every, save_every=args.save_every,
            keep_checkpoints=args.keep_checkpoints, num_workers=args.num_workers, progress=args.progress,
            tensorboard=args.tensorboard,
        )
        deadline = started + args.max_minutes * 60 if args.max_minutes else None

        def stop_at_deadline(trainer, step, record):
            if deadline and time.perf_counter() > deadline and trainer.step < trainer.total_steps:
                log(f"time limit of {args.max_minutes} minutes reached at step {step}")
                trainer.total_steps = trainer.step  # ends the loop after this step

        trainer = Trainer(
            model, train_set, collate, train_cfg,
            eval_fn=lambda m: evaluate_pretraining(m, eval_set, eval_collate),
            metrics_fn=pretraining_metrics,
            callbacks=[stop_at_deadline],
        )
        train_start = time.perf_counter()
        result = trainer.train(resume=args.resume)
        train_seconds = time.perf_counter() - train_start

        # 5. the final model, curves and summary
        model.save_pretrained(out)
        save_pretraining_curves(result.history, out / "pretraining_curves.png")
        final = next((r for r in reversed(result.history) if "eval_mlm_loss" in r), {})
        train_records = [r for r in result.history if "train_mlm_loss" in r]
        tokens_per_s = [r["tokens_per_s"] for r in train_records if "tokens_per_s" in r]
        summary = {
            "steps": result.step,
            "train_seconds": round(train_seconds, 1),
            "tokens_per_s": round(sum(tokens_per_s) / len(tokens_per_s), 1) if tokens_per_s else None,
            "first_train_mlm_loss": train_records[0]["train_mlm_loss"] if train_records else None,
            "last_train_mlm_loss": train_records[-1]["train_mlm_loss"] if train_records else None,
            "heldout": {k[len("eval_"):]: v for k, v in final.items() if k.startswith("eval_")},
            "corpus": stats,
            "train_examples": data_stats,
            "parameters": model.num_parameters(),
            "vocab_size": tokenizer.vocab_size,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
