"""Texts -> token ids for classification, and token ids -> padded batches.

Long texts, `--long-text`:

- `truncate` keeps the first `max_seq_length` tokens (with a text pair, the longer segment is cut
  first).
- `head-tail` keeps the first quarter and the last three quarters of the room: a review's verdict
  is often in its last lines. Sun et al. (2019, *How to Fine-Tune BERT for Text Classification?*)
  found head + tail the best of the simple cuts on IMDb (128 head and 382 tail tokens of 510).
  With a text pair, the second segment is capped at half the length and the first is cut.
- `chunk` cuts the first segment into overlapping windows of `max_seq_length` tokens (`stride`
  tokens shared by neighbouring windows; a second segment, capped at half the length, rides along
  with every window). Fine-tuning then trains on EVERY window, with its document's label;
  evaluation and prediction average the windows' logits into one prediction per document
  (`bertlab.predict`).
- `auto` (bertlab finetune's default) is resolved once, on the training texts, by `choose_long_text`:
  `truncate` when at most `FEW_LONG` of them are longer than `max_seq_length`, else `head-tail`,
  trained at `max_seq_length` and used for prediction at all the model's positions (at most 512;
  `prediction_length`). The run saves both in args.json, and `evaluate` / `predict` use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .common import BertlabError
from .tokenizer import WordPieceTokenizer

LONG_TEXT = ("truncate", "head-tail", "chunk")
# How a text becomes token ids when neither the caller nor the model's run says otherwise.
ENCODING_DEFAULTS = {"max_seq_length": 128, "long_text": "truncate", "stride": 32}
FEW_LONG = 0.10  # --long-text auto truncates when at most this share of training texts is too long
HEAD_SHARE = 0.25  # head-tail: the share of the room given to the text's beginning


class EncodingError(BertlabError):
    """Texts or settings that cannot be turned into token ids."""


@dataclass
class Encoded:
    """Token ids of windows (one per document with truncation, one or more with chunking)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    doc: list[int]  # window -> index of its document
    n_docs: int
    truncated: int = 0  # documents cut short (truncate, head-tail)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(
    tokenizer: WordPieceTokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    max_seq_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
) -> Encoded:
    """[CLS] text [SEP] (pair [SEP]) token ids, truncated or cut into overlapping windows."""
    texts = list(texts)
    if pairs is not None and len(pairs) != len(texts):
        raise EncodingError(f"{len(texts)} texts but {len(pairs)} second segments")
    if long_text not in LONG_TEXT:
        raise EncodingError(f"--long-text {long_text!r}: choose one of {', '.join(LONG_TEXT)}")
    if max_seq_length < 8:
        raise EncodingError(f"--max-seq-length {max_seq_length}: must be at least 8")
    if not texts:
        return Encoded([], [], [], 0)
    backend = tokenizer.backend
    if long_text == "truncate":
        backend.enable_truncation(max_seq_length, strategy="longest_first")
        try:
            inputs = list(zip(texts, pairs)) if pairs is not None else texts
            encodings = backend.encode_batch(inputs)
        finally:
            backend.no_truncation()
        return Encoded([e.ids for e in encodings], [e.type_ids for e in encodings], list(range(len(texts))), len(texts),
                       truncated=sum(1 for e in encodings if e.overflowing))

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids_a = tokenizer.encode_batch_ids(texts)
    ids_b = tokenizer.encode_batch_ids(list(pairs)) if pairs is not None else None
    out = Encoded([], [], [], len(texts))
    for d, a in enumerate(ids_a):
        b = ids_b[d][: (max_seq_length - 3) // 2] if ids_b is not None else None
        room = max_seq_length - 2 - (len(b) + 1 if b is not None else 0)  # tokens of `a` per window
        if long_text == "head-tail":
            if len(a) > room:
                head = int(room * HEAD_SHARE)
                a = a[:head] + a[len(a) - (room - head):]
                out.truncated += 1
            ids, types = [cls_id] + a + [sep_id], [0] * (len(a) + 2)
            if b is not None:
                ids += b + [sep_id]
                types += [1] * (len(b) + 1)
            out.input_ids.append(ids)
            out.token_type_ids.append(types)
            out.doc.append(d)
            continue
        step = room - stride
        if step < 1:
            raise EncodingError(
                f"--stride {stride}: windows of {room} text tokens would not move forward; use a stride below {room}"
            )
        start = 0
        while True:
            window = a[start : start + room]
            ids = [cls_id] + window + [sep_id]
            types = [0] * len(ids)
            if b is not None:
                ids += b + [sep_id]
                types += [1] * (len(b) + 1)
            out.input_ids.append(ids)
            out.token_type_ids.append(types)
            out.doc.append(d)
            if start + room >= len(a):
                break
            start += step
    return out


def text_lengths(tokenizer: WordPieceTokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[int]:
    """Tokens each example would take uncut: [CLS] text [SEP] (pair [SEP])."""
    n = [len(ids) + 2 for ids in tokenizer.encode_batch_ids(list(texts))]
    if pairs is not None:
        n = [k + len(ids) + 1 for k, ids in zip(n, tokenizer.encode_batch_ids(list(pairs)))]
    return n


def choose_long_text(lengths: Sequence[int], max_seq_length: int) -> tuple[str, str]:
    """`--long-text auto`: the strategy for texts of these token `lengths`, and one line saying why.

    Few long texts (at most FEW_LONG, bertlab's threshold): truncate, they lose little. Otherwise
    head-tail at `max_seq_length`, so that a step costs the same time; `prediction_length` then
    lets evaluate and predict read more. On whole IMDb reviews (results/long_documents.md) the
    MiniLM trained this way scored 0.853 on 512-token head-tail cuts of the test reviews, 0.830 on
    512-token truncation, 0.741 on 128-token truncation, and 0.854 averaging 128-token chunks,
    which took longer.
    """
    n = len(lengths)
    long = sorted(k for k in lengths if k > max_seq_length)
    share = len(long) / n if n else 0.0
    if not long:
        return "truncate", f"long texts: none of the {n:,} training texts exceeds {max_seq_length} tokens"
    pct = f"{share:.0%}" if share >= 0.01 else "under 1%"
    said = (f"long texts: {len(long):,} of {n:,} training texts ({pct}) exceed {max_seq_length} tokens "
            f"(median of those {long[len(long) // 2]:,})")
    if share <= FEW_LONG:
        return "truncate", f"{said}: truncating them (--long-text auto; head-tail keeps their ends)"
    head = int((max_seq_length - 2) * HEAD_SHARE)
    return "head-tail", (f"{said}: using head-tail, {max_seq_length} tokens (the first {head} and the last "
                         f"{max_seq_length - 2 - head} text tokens; --long-text auto)")


class PadCollator:
    """Examples (token id lists, a label) -> a batch padded to its longest member."""

    def __init__(self, pad_token_id: int = 0):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        B, T = len(examples), max(len(x["input_ids"]) for x in examples)
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros(B, T, dtype=torch.long)
        attention_mask = torch.zeros(B, T, dtype=torch.long)
        for row, x in enumerate(examples):
            n = len(x["input_ids"])
            input_ids[row, :n] = torch.tensor(x["input_ids"])
            token_type_ids[row, :n] = torch.tensor(x["token_type_ids"])
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        if "labels" in examples[0]:
            batch["labels"] = torch.tensor([x["labels"] for x in examples], dtype=torch.long)
        return batch


def prediction_length(strategy: str, max_seq_length: int, positions: int) -> int:
    """The length evaluate and predict use after `--long-text auto` chose `strategy` for training at
    `max_seq_length`: with head-tail, all the model's positions (at most 512); else the same length.

    Reading more of a long text at prediction costs little beside training: on whole IMDb reviews
    a MiniLM trained on 128-token head-tail cuts went from 0.806 to 0.853 test accuracy when it
    predicted on 512-token cuts, for 1.4 minutes of evaluation (results/long_documents.md)."""
    return max(max_seq_length, min(512, positions)) if strategy == "head-tail" else max_seq_length


def encoding_settings(model_dir: str | Path, **given: Any) -> dict[str, Any]:
    """max_seq_length / long_text / stride: those given (not None), else what the model in `model_dir`
    was fine-tuned to be used with (its args.json: "prediction", else the training settings), else
    ENCODING_DEFAULTS."""
    saved: dict[str, Any] = {}
    try:
        saved = json.loads((Path(model_dir) / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    if not isinstance(saved, dict):
        saved = {}
    if isinstance(saved.get("prediction"), dict):
        saved = {**saved, **saved["prediction"]}
    out = {k: saved.get(k, v) for k, v in ENCODING_DEFAULTS.items()}
    out.update({k: v for k, v in given.items() if k in ENCODING_DEFAULTS and v is not None})
    return out
