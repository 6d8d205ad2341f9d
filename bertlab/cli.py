"""The `bertlab` command.

    bertlab pretrain --corpus news --preset tiny --steps 2000 --output runs/tiny-news
    bertlab fill-mask --model runs/tiny-news "the [MASK] said on monday"
    bertlab info minilm-l6
    bertlab bench --task pretrain

Bad input gives one line on stderr naming what is wrong, and exit code 2 (no traceback; set
BERTLAB_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__

PRESET_NAMES = ["tiny", "mini", "small", "medium", "base", "large"]


def cmd_info(args: argparse.Namespace) -> int:
    from .config import BertConfig
    from .model import BertModel

    if args.preset:
        model = BertModel(BertConfig.from_preset(args.preset))
        source = f"preset {args.preset}"
    else:
        model = BertModel.from_pretrained(args.model)
        source = args.model
    c = model.config
    print(f"model: {source}")
    print(f"layers {c.num_hidden_layers}, hidden {c.hidden_size}, heads {c.num_attention_heads}, "
          f"intermediate {c.intermediate_size}, vocabulary {c.vocab_size}, positions {c.max_position_embeddings}")
    print(f"parameters (BertModel): {model.num_parameters():,}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import PretrainArgs, run_pretraining

    fields = PretrainArgs.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values["lowercase"] = not args.cased
    summary = run_pretraining(PretrainArgs(**values), log=lambda msg: print(msg, flush=True))
    held = summary["heldout"]
    print(f"done: {summary['steps']} steps in {summary['train_seconds']:.0f} s "
          f"({summary['tokens_per_s'] or 0:,.0f} tokens/s); held-out MLM loss {held.get('mlm_loss', float('nan')):.3f}, "
          f"MLM accuracy {held.get('mlm_accuracy', float('nan')):.3f}, NSP accuracy {held.get('nsp_accuracy', float('nan')):.3f}")
    print(f"model, tokenizer, metrics.jsonl and pretraining_curves.png in {args.output}")
    return 0


def cmd_fill_mask(args: argparse.Namespace) -> int:
    from .model import BertForMaskedLM
    from .pretrain import fill_mask
    from .tokenizer import WordPieceTokenizer

    import logging

    logging.getLogger("bertlab").setLevel(logging.ERROR)
    model = BertForMaskedLM.from_pretrained(args.model)
    if model.loading_info["missing_keys"]:
        raise ValueError(f"{args.model}: has no trained MLM head (a pretraining run folder has one)")
    tokenizer = WordPieceTokenizer.from_pretrained(args.model)
    for text in args.text:
        print(text)
        for n, candidates in enumerate(fill_mask(model, tokenizer, text, args.top_k), 1):
            shown = ", ".join(f"{tok} ({p:.2f})" for tok, p in candidates)
            print(f"  [MASK] {n}: {shown}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertlab", description="BERT from scratch: pretrain, fine-tune, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"bertlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="size and parameter count of a model or a preset")
    info.add_argument("model", nargs="?", default="minilm-l6", help="model folder, registered name or Hub name")
    info.add_argument("--preset", choices=PRESET_NAMES)
    info.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "pretrain", help="pretrain a BERT (MLM + NSP) from raw text",
        description="Train a WordPiece tokenizer, build NSP sentence pairs, and pretrain BERT with masked-LM and "
                    "next-sentence-prediction losses; evaluate on held-out documents; save a Hugging Face-format "
                    "folder with the tokenizer, metrics.jsonl and a curve plot.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--corpus", nargs="+", default=["news"],
                   help="'news' (the embedded 2-million-word news corpus), text files or folders (documents "
                        "separated by blank lines, or one per file), or a Hub data set (wikitext, hf:NAME[:CONFIG])")
    g.add_argument("--data-dir", help="folder for relative corpus paths (default: $BERTLAB_DATA_DIR)")
    g.add_argument("--heldout", type=float, default=0.01,
                   help="documents held out for evaluation: a fraction (<1) or a count")
    g.add_argument("--max-eval-examples", type=int, default=1000, help="held-out pairs evaluated")
    g = p.add_argument_group("tokenizer")
    g.add_argument("--tokenizer", help="use this tokenizer folder (vocab.txt / tokenizer.json) instead of training one")
    g.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary size to train")
    g.add_argument("--cased", action="store_true", help="keep case and accents (default: lower-case, strip accents)")
    g.add_argument("--limit-alphabet", type=int, default=1000,
                   help="characters kept whole, the most frequent first; any other becomes [UNK] (raise it for "
                        "Chinese, where every character is a token: e.g. 6000)")
    g = p.add_argument_group("examples")
    g.add_argument("--max-seq-length", type=int, default=128, help="tokens per example, [CLS] and [SEP]s included")
    g.add_argument("--short-seq-prob", type=float, default=0.1, help="probability of a shorter target length")
    g.add_argument("--dupe-factor", type=int, default=1, help="passes over the corpus when building pairs")
    g.add_argument("--masked-lm-prob", type=float, default=0.15, help="share of tokens chosen for the MLM loss")
    g.add_argument("--whole-word-mask", action="store_true", help="choose whole words, not single pieces")
    g = p.add_argument_group("model and training")
    g.add_argument("--preset", default="tiny", choices=PRESET_NAMES, help="model size")
    g.add_argument("--dropout", type=float,
                   help="hidden and attention dropout (default: the preset's 0.1; 0 often trains small models faster)")
    g.add_argument("--batch-size", type=int, default=32, help="examples per step (per process under torchrun)")
    g.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    g.add_argument("--learning-rate", type=float, default=5e-4, help="peak AdamW learning rate")
    g.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default: 10%% of --steps)")
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (not on biases/LayerNorm)")
    g.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "no"],
                   help="mixed precision; auto = bf16 or fp16 on a GPU, none on a CPU")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--seed", type=int, default=0, help="seed of data order, masks and initialisation")
    g.add_argument("--max-minutes", type=float, help="stop after this many minutes and save")
    g = p.add_argument_group("run folder")
    g.add_argument("--output", required=True, help="run folder to create (must be new or empty)")
    g.add_argument("--resume", action="store_true", help="continue the run in --output from its latest checkpoint")
    g.add_argument("--save-every", type=int, help="checkpoint every N steps")
    g.add_argument("--eval-every", type=int, help="evaluate on held-out data every N steps (default: at the end)")
    g.add_argument("--log-every", type=int, default=10, help="log training metrics every N steps")
    g.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    g.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (needs tensorboard)")
    p.set_defaults(func=cmd_pretrain)

    f = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pretrained model")
    f.add_argument("--model", required=True, help="a pretraining run folder (or any BERT with an MLM head)")
    f.add_argument("--top-k", type=int, default=5)
    f.add_argument("text", nargs="+", help="sentences containing [MASK]")
    f.set_defaults(func=cmd_fill_mask)

    # Fine-tuning, prediction, evaluation and baselines register their own subcommands.
    from . import evaluate, finetune

    finetune.add_subcommands(sub)
    evaluate.add_subcommands(sub)

    b = sub.add_parser("bench", help="throughput against transformers (see `bertlab bench --help`)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, KeyError) as err:
        if os.environ.get("BERTLAB_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"bertlab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bertlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
