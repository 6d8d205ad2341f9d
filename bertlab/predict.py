"""Prediction with a fine-tuned classifier: load it, and turn texts into class probabilities.

`load_classifier` and `predict_proba` are what `bertlab predict` and `bertlab evaluate` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch

from .common import BertlabError, check_options, eval_mode, option, quiet_logger
from .encoding import LONG_TEXT, Encoded, PadCollator, encode_texts, encoding_settings
from .model import BertForSequenceClassification
from .tokenizer import WordPieceTokenizer


class PredictError(BertlabError):
    """A model or texts that cannot be used for prediction."""


def _progress_disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # None: tqdm shows a bar only on a terminal


@torch.no_grad()
def encoded_logits(model, encoded: Encoded, pad_token_id: int = 0, batch_size: int = 64,
                   progress: bool | None = False) -> torch.Tensor:
    """(N documents, num_labels) float32 logits on the CPU, window logits averaged per document.

    Windows are run longest first in batches of similar length (little padding, and a batch that
    does not fit in memory fails at once); results come back in document order.
    """
    from tqdm.auto import tqdm

    num_labels = model.config.num_labels
    sums = torch.zeros(encoded.n_docs, num_labels)
    counts = torch.zeros(encoded.n_docs)
    if not len(encoded):
        return sums
    device = next(model.parameters()).device
    collate = PadCollator(pad_token_id)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded.input_ids[i]))
    for start in tqdm(range(0, len(order), batch_size), desc="predict", leave=False,
                      disable=_progress_disabled(progress)):
        idx = order[start : start + batch_size]
        batch = collate([{"input_ids": encoded.input_ids[i], "token_type_ids": encoded.token_type_ids[i]} for i in idx])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()  # (B, K)
        docs = torch.tensor([encoded.doc[i] for i in idx])
        sums.index_add_(0, docs, logits)
        counts.index_add_(0, docs, torch.ones(len(idx)))
    return sums / counts.clamp(min=1).unsqueeze(1)


def predict_proba(
    model: BertForSequenceClassification,
    tokenizer: WordPieceTokenizer,
    texts: list[str],
    pairs: list[str] | None = None,
    batch_size: int = 64,
    max_seq_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
    progress: bool | None = None,
) -> torch.Tensor:
    """(N, num_labels) float32 class probabilities of `texts` (and `pairs`), in input order."""
    if isinstance(texts, str):
        raise PredictError("texts must be a list of strings, not one string")
    positions = model.config.max_position_embeddings
    if max_seq_length > positions:
        raise PredictError(f"max_seq_length {max_seq_length} is more than the model's {positions} positions")
    encoded = encode_texts(tokenizer, texts, pairs, max_seq_length, long_text, stride)
    with eval_mode(model):
        logits = encoded_logits(model, encoded, tokenizer.pad_token_id, batch_size, progress)
    return logits.softmax(-1)


def load_classifier(model_dir: str) -> tuple[BertForSequenceClassification, WordPieceTokenizer]:
    """A fine-tuned classifier folder (or Hub name) -> (model in eval mode on the CPU, tokenizer)."""
    with quiet_logger():  # missing keys are checked below, in one line
        model = BertForSequenceClassification.from_pretrained(model_dir)
    if any(k.startswith("classifier.") for k in model.loading_info["missing_keys"]):
        raise PredictError(f"{model_dir}: has no trained classification head; fine-tune it first (bertlab finetune)")
    tokenizer = WordPieceTokenizer.from_pretrained(model_dir)
    if model.config.id2label is None:
        model.config.id2label = {i: f"LABEL_{i}" for i in range(model.config.num_labels)}
        model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.eval()
    return model, tokenizer


def label_names(model) -> list[str]:
    id2label = model.config.id2label or {}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]


@dataclass
class PredictArgs:
    """What `bertlab predict` takes; its flags are made from these fields."""

    model: str = option(help="a `bertlab finetune` output folder (or any BERT classifier folder)")
    text: list[str] = option([], "texts to classify; '-' reads one text per line from standard input",
                             positional=True, nargs="*")
    file: str | None = option(None, "texts from a file: one per line, or a CSV/TSV/JSON-lines/Parquet table")
    text_column: str | None = option(None, "column of the text in a table: a name, or a 0-based number for a "
                                     "CSV/TSV file without a header row (default: text, sentence, ...)")
    text_pair_column: str | None = option(None, "column of a second text in a table: a name, or a 0-based number "
                                          "for a file without a header row (as --text-column: both names or both "
                                          "numbers)")
    batch_size: int = option(64, "texts per batch", minimum=1)
    max_seq_length: int | None = option(None, "tokens per text (default: what the model was fine-tuned with, "
                                        "or 128)", minimum=8)
    long_text: str | None = option(None, "truncate, head-tail or chunk (default: as fine-tuned, or truncate)", choices=LONG_TEXT)
    stride: int | None = option(None, "window overlap with --long-text chunk (default: as fine-tuned, or 32)", minimum=0)

    def validate(self) -> None:
        check_options(self, PredictError)


def gather_texts(args: PredictArgs, stdin: Iterable[str]) -> tuple[list[str], list[str] | None]:
    """The texts (and second segments) to classify: from --file, from `stdin` for '-', or as given."""
    from .data.classification import load_texts

    if args.file:
        if args.text:
            raise PredictError("give texts as arguments or --file, not both")
        texts, pairs, _ = load_texts(args.file, args.text_column, args.text_pair_column)
        return texts, pairs
    if args.text == ["-"]:
        texts, where = [line.rstrip("\r\n") for line in stdin], "<stdin>: line"
        while texts and not texts[-1].strip():
            texts.pop()
    else:
        texts, where = list(args.text), "text"
    for n, text in enumerate(texts, 1):
        if not text.strip():
            raise PredictError(f"{where} {n}: empty text")
    if not texts:
        raise PredictError("no texts to classify: give them as arguments, '-' for standard input, or --file")
    return texts, None


def run_prediction(args: PredictArgs, stdin: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """One record per text: {"text", ("text_pair"), "label", "probabilities": {label: p}}."""
    args.validate()
    texts, pairs = gather_texts(args, stdin)
    settings = encoding_settings(args.model, max_seq_length=args.max_seq_length, long_text=args.long_text,
                                 stride=args.stride)
    model, tokenizer = load_classifier(args.model)
    if torch.cuda.is_available():
        model.cuda()
    probs = predict_proba(model, tokenizer, texts, pairs, batch_size=args.batch_size, progress=None, **settings)
    names = label_names(model)
    for i, text in enumerate(texts):
        record: dict[str, Any] = {"text": text}
        if pairs is not None:
            record["text_pair"] = pairs[i]
        p = probs[i].tolist()
        record["label"] = names[max(range(len(p)), key=p.__getitem__)]
        record["probabilities"] = dict(zip(names, p))
        yield record
