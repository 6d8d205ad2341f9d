"""bertlab: BERT from scratch — the library behind the book."""

from .config import PRESETS, BertConfig, ConfigError
from .checkpoint import CheckpointError
from .model import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    ModelOutput,
)
from .tokenizer import WordPieceTokenizer, train_wordpiece

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "ModelOutput",
    "WordPieceTokenizer",
    "train_wordpiece",
    "ConfigError",
    "CheckpointError",
    "__version__",
]
