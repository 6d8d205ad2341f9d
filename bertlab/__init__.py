"""bertlab: BERT from scratch — the library behind the book."""

from .checkpoint import CheckpointError
from .common import BertlabError
from .config import FAST_PATHS, PRESETS, BertConfig, ConfigError
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
    "FAST_PATHS",
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "ModelOutput",
    "WordPieceTokenizer",
    "train_wordpiece",
    "BertlabError",
    "ConfigError",
    "CheckpointError",
    "__version__",
]
