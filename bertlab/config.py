"""`BertConfig`: every size and switch of the model in one dataclass.

Field names are those of the reference implementation's `config.json`, so a Hugging Face BERT
checkpoint's configuration reads straight into this class and ours writes back out for it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import BertlabError

# (layers, hidden, heads). The small sizes are those of Turc et al. (2019), "Well-Read Students
# Learn Better" (arXiv:1908.08962); base and large are BERT's own (Devlin et al., 2019, §3).
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}

ATTENTION_IMPLEMENTATIONS = ("sdpa", "explicit")
# The speed paths of bertlab.fast, as config overrides: what `bertlab pretrain`, `finetune` and
# `bench` run with. A model built by hand computes the plain way unless its config says otherwise.
FAST_PATHS: dict[str, Any] = {"unpad_inputs": True, "fused_mlm_loss": True}
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


class ConfigError(BertlabError):
    """A configuration that cannot describe a BERT model."""


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    # "sdpa": torch.nn.functional.scaled_dot_product_attention (fused kernels);
    # "explicit": softmax(QK^T/sqrt(d_k) + mask) V written out, and able to return the probabilities.
    attn_implementation: str = "sdpa"
    # Speed paths of bertlab.fast, tested equal to the plain computation and saved in config.json.
    # unpad_inputs: per-token work on the real tokens of a padded batch only (padding rows of the
    # outputs come back as zeros). fused_mlm_loss: while training, the MLM projection and its
    # cross-entropy in one pass that never keeps the (N, V) logits.
    unpad_inputs: bool = False
    fused_mlm_loss: bool = False
    # Classification head.
    num_labels: int = 2
    classifier_dropout: float | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    # Anything else found in a config.json is kept here and written back unchanged.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError(
                f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, "
                f"not {self.attn_implementation!r}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"hidden_act must be one of {ACTIVATIONS}, not {self.hidden_act!r}")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            self.num_labels = len(self.id2label)
        if self.label2id is not None:
            self.label2id = {str(k): int(v) for k, v in self.label2id.items()}
        if self.id2label is not None and self.label2id is None:
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "BertConfig":
        """A named size (tiny, mini, small, medium, base, large); FFN width is 4 x hidden."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        layers, hidden, heads = PRESETS[name]
        values: dict[str, Any] = dict(
            num_hidden_layers=layers,
            hidden_size=hidden,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
        )
        values.update(overrides)
        return cls(**values)

    def replace(self, **overrides: Any) -> "BertConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        if "num_labels" in overrides and "id2label" not in overrides:
            # A new label count invalidates the old label names.
            overrides = {**overrides, "id2label": None, "label2id": None}
        return dataclasses.replace(self, **overrides)

    # --- Hugging Face config.json -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "attn_implementation"):
                continue
            out[f.name] = getattr(self, f.name)
        if self.id2label is None:
            out.pop("id2label")
            out.pop("label2id")
        else:
            out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        if self.problem_type is None:
            out.pop("problem_type")
        out["model_type"] = "bert"
        out["position_embedding_type"] = "absolute"
        out["bertlab_attn_implementation"] = self.attn_implementation
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "BertConfig":
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"{source}: model_type is {model_type!r}, but bertlab loads only 'bert'")
        pos = data.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ConfigError(f"{source}: position_embedding_type {pos!r} is not supported (only 'absolute')")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "attn_implementation"}
        values = {k: v for k, v in data.items() if k in known}
        if "bertlab_attn_implementation" in data:
            values["attn_implementation"] = data["bertlab_attn_implementation"]
        if "num_labels" not in data and "id2label" in data:
            values["num_labels"] = len(data["id2label"])
        dropped = {"model_type", "position_embedding_type", "bertlab_attn_implementation", "architectures"}
        extra = {k: v for k, v in data.items() if k not in known and k not in dropped}
        try:
            return cls(**values, extra=extra)
        except (TypeError, ConfigError) as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> "BertConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(data, source=str(path))
