"""The `bertlab` command.

    bertlab pretrain --corpus news --preset tiny --steps 2000 --output runs/tiny-news
    bertlab fill-mask --model runs/tiny-news "the [MASK] said on monday"
    bertlab finetune --model minilm-l6 --data sst2 --output runs/sst2
    bertlab evaluate --model runs/sst2 --data sst2
    bertlab predict --model runs/sst2 "a gorgeous, witty, seductive movie"
    bertlab info minilm-l6
    bertlab bench --task pretrain

All argparse lives here. The flags of pretrain, finetune, evaluate, baseline and predict are made
from the fields of their argument dataclasses (`bertlab.common.option`), so each default is
written once, beside the field, and the Python API and the command agree.

Bad input (a `BertlabError`, a file that is not there, or a flag argparse refuses) gives one line
on stderr and exit code 2; anything else is a bug and keeps its traceback. Set BERTLAB_DEBUG=1 to
see a traceback for bad input too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from typing import Any

from . import __version__
from .common import BertlabError, flag_name
from .config import PRESETS


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error (not the whole usage first)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Help(argparse.HelpFormatter):
    """Shows "(default: X)" where there is a default worth showing and the help does not say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == [] or default == argparse.SUPPRESS \
                or "default" in text or action.required:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text
        return f"{text} (default: %(default)s)"


def _plain_type(hint: Any) -> tuple[type, bool]:
    """(the type, is it a list) of a field's annotation, with `| None` removed."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) in (list, tuple):
        return typing.get_args(hint)[0], True
    return hint, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per `option` field of the dataclass `cls`, in field order, in its help group."""
    hints = typing.get_type_hints(cls)
    groups: dict[str | None, Any] = {None: parser}
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue  # a field of the Python API only
        meta = f.metadata
        group = meta["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        kind, many = _plain_type(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kwargs: dict[str, Any] = {"help": meta["help"].replace("%", "%%")}
        if kind is bool:
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            kwargs["type"] = kind
            if many or meta["nargs"]:
                kwargs["nargs"] = meta["nargs"] or "+"
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
        if meta["positional"]:
            groups[group].add_argument(f.name, default=default, **kwargs)
            continue
        flag = flag_name(f)
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        groups[group].add_argument(flag, dest=f.name, **kwargs)


def make_args(cls: type, namespace: argparse.Namespace):
    """The dataclass `cls` filled from parsed arguments."""
    values = vars(namespace)
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- the commands

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


def cmd_fill_mask(args: argparse.Namespace) -> int:
    from .common import quiet_logger
    from .model import BertForMaskedLM
    from .pretrain import fill_mask
    from .tokenizer import WordPieceTokenizer

    if args.top_k < 1:
        raise BertlabError(f"--top-k {args.top_k}: must be at least 1")
    with quiet_logger():
        model = BertForMaskedLM.from_pretrained(args.model)
    if model.loading_info["missing_keys"]:
        raise BertlabError(f"{args.model}: has no trained MLM head (a pretraining run folder has one)")
    tokenizer = WordPieceTokenizer.from_pretrained(args.model)
    for text in args.text:
        print(text)
        for n, candidates in enumerate(fill_mask(model, tokenizer, text, args.top_k), 1):
            shown = ", ".join(f"{tok} ({p:.2f})" for tok, p in candidates)
            print(f"  [MASK] {n}: {shown}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import PredictArgs, run_prediction

    for record in run_prediction(make_args(PredictArgs, args), stdin=sys.stdin if args.text == ["-"] else ()):
        print(json.dumps(record, ensure_ascii=False))
    return 0


def run_command(args: argparse.Namespace) -> int:
    """pretrain, finetune, evaluate, baseline: fill the dataclass, run, print the report lines."""
    run_args = make_args(args.arguments, args)
    for line in args.report(args.run(run_args, log=_log), run_args):
        print(line)
    return 0


# --------------------------------------------------------------------------- the parser

DESCRIPTIONS = {
    "pretrain": (
        "pretrain a BERT (MLM + NSP) from raw text",
        "Train a WordPiece tokenizer, build NSP sentence pairs, and pretrain BERT with masked-LM and "
        "next-sentence-prediction losses; evaluate on held-out documents; save a Hugging Face-format folder with "
        "the tokenizer, metrics.jsonl and a curve plot."),
    "finetune": (
        "fine-tune BERT for text classification",
        "Fine-tune a BERT checkpoint (or a randomly initialised one) to classify texts: evaluate on the validation "
        "split as it trains, keep the best model, and leave a Hugging Face-format folder (model, tokenizer, "
        "metrics.jsonl, learning curve, summary) that transformers.pipeline('text-classification') also loads."),
    "predict": (
        "classify texts with a fine-tuned model (JSON lines)",
        "Classify texts with a fine-tuned model folder; print one JSON object per text: "
        '{"text": ..., "label": ..., "probabilities": {label: p, ...}}.'),
    "evaluate": (
        "metrics, figures and predictions of a fine-tuned classifier on a data split",
        "Predict a data split with a fine-tuned classifier and write metrics.json (accuracy, macro and weighted "
        "precision/recall/F1, per-class report, confusion matrix, ROC-AUC for two classes, 95% bootstrap "
        "intervals, expected calibration error, the most confidently wrong examples), figures (confusion matrix, "
        "reliability diagram, per-class F1), predictions.jsonl and errors.jsonl."),
    "baseline": (
        "majority-class and TF-IDF + logistic-regression baselines on a data set",
        "Fit the majority class and TF-IDF + logistic regression (scikit-learn) on the training split, choose the "
        "regularisation C on the validation split, and evaluate both on --split, writing the same metrics.json and "
        "figures as `bertlab evaluate` (OUTPUT/majority/, OUTPUT/tfidf_lr/) and OUTPUT/summary.json. A fine-tuned "
        "BERT that does not beat these is not yet useful."),
    "bench": (
        "throughput against transformers",
        "Time bertlab against transformers (SDPA attention) on the same configuration, weights and batches, after "
        "checking their losses and gradients equal; print tokens/s of both and the ratio."),
}


def commands() -> dict[str, dict[str, Any]]:
    """name -> the argument dataclass, and how the command runs: its function and its report lines."""
    from . import baseline, bench, evaluate, finetune, predict, pretrain

    return {
        "pretrain": {"arguments": pretrain.PretrainArgs, "run": pretrain.run_pretraining,
                     "report": pretrain.report_lines, "func": run_command},
        "finetune": {"arguments": finetune.FinetuneArgs, "run": finetune.run_finetune,
                     "report": finetune.report_lines, "func": run_command},
        "predict": {"arguments": predict.PredictArgs, "func": cmd_predict},
        "evaluate": {"arguments": evaluate.EvaluateArgs, "run": evaluate.run_evaluation,
                     "report": evaluate.report_lines, "func": run_command},
        "baseline": {"arguments": baseline.BaselineArgs, "run": baseline.run_baseline,
                     "report": baseline.report_lines, "func": run_command},
        "bench": {"arguments": bench.BenchArgs, "run": bench.run_bench, "report": bench.report_lines,
                  "func": run_command},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bertlab", description="BERT from scratch: pretrain, fine-tune, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"bertlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="size and parameter count of a model or a preset")
    info.add_argument("model", nargs="?", default="minilm-l6", help="model folder, registered name or Hub name")
    info.add_argument("--preset", choices=list(PRESETS))
    info.set_defaults(func=cmd_info)

    for name, spec in commands().items():
        help_, description = DESCRIPTIONS[name]
        p = sub.add_parser(name, help=help_, description=description, formatter_class=Help)
        add_options(p, spec["arguments"])
        p.set_defaults(**spec)

    f = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pretrained model")
    f.add_argument("--model", required=True, help="a pretraining run folder (or any BERT with an MLM head)")
    f.add_argument("--top-k", type=int, default=5, help="candidates shown per [MASK] (default: 5)")
    f.add_argument("text", nargs="+", help="sentences containing [MASK]")
    f.set_defaults(func=cmd_fill_mask)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BertlabError, FileNotFoundError) as err:
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
