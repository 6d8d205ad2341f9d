"""Data: pretraining corpora and the examples BERT learns from.

- `corpus`: documents (lists of sentences) from the embedded news corpus, local text files, or the
  Hugging Face Hub; a rule-based sentence splitter; a deterministic held-out split.
- `pretraining`: NSP sentence pairs as google-research/bert builds them, MLM masking (80/10/10,
  optionally whole-word), and a collator that re-masks every epoch.
- `classification`: text-classification data sets (embedded, registered, local) with fixed splits;
  `tables` reads their CSV/TSV/JSON-lines/Parquet files into rows, errors naming file and line.
"""

from .corpus import CorpusError, corpus_stats, heldout_indices, load_corpus, split_heldout, split_sentences
from .pretraining import (
    Instance,
    MLMCollator,
    PretrainingDataset,
    build_pretraining_dataset,
    create_instances,
    example_seed,
    mask_tokens,
    tokenize_documents,
    truncate_seq_pair,
)

__all__ = [
    "CorpusError",
    "load_corpus",
    "split_sentences",
    "split_heldout",
    "heldout_indices",
    "corpus_stats",
    "Instance",
    "create_instances",
    "truncate_seq_pair",
    "tokenize_documents",
    "PretrainingDataset",
    "mask_tokens",
    "example_seed",
    "MLMCollator",
    "build_pretraining_dataset",
]

# Text-classification data sets (embedded Rotten Tomatoes, SST-2, ChnSentiCorp, local files).
from .classification import (
    ClassificationData,
    ClassificationDataError,
    ClassificationSplit,
    load_classification,
    load_texts,
)

__all__ += [
    "ClassificationDataError",
    "ClassificationSplit",
    "ClassificationData",
    "load_classification",
    "load_texts",
]
