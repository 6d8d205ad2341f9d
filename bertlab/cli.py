"""The `bertlab` command. Each subcommand prints one clear line on bad input and exits 2."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def cmd_info(args: argparse.Namespace) -> int:
    from .config import BertConfig
    from .model import BertModel

    if args.preset:
        config = BertConfig.from_preset(args.preset)
        model = BertModel(config)
        source = f"preset {args.preset}"
    else:
        model = BertModel.from_pretrained(args.model)
        config, source = model.config, args.model
    print(f"model: {source}")
    print(
        f"layers {config.num_hidden_layers}, hidden {config.hidden_size}, heads {config.num_attention_heads}, "
        f"intermediate {config.intermediate_size}, vocabulary {config.vocab_size}, "
        f"positions {config.max_position_embeddings}"
    )
    print(f"parameters (BertModel): {model.num_parameters():,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertlab", description="BERT from scratch: pretrain, fine-tune, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"bertlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="size and parameter count of a model or a preset")
    info.add_argument("model", nargs="?", default="minilm-l6", help="model folder, registered name or Hub name")
    info.add_argument("--preset", choices=["tiny", "mini", "small", "medium", "base", "large"])
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ConfigError, FileNotFoundError) as err:
        print(f"bertlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
