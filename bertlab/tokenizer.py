"""WordPiece tokenizers: load an existing vocabulary (the embedded MiniLM's, or any BERT folder).

Encoding follows BERT: [CLS] A [SEP] (B [SEP]), segment ids 0 for A and 1 for B, an attention mask
of 1 on tokens and 0 on padding. Training a vocabulary from a corpus comes with the pretraining
chapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from .checkpoint import CheckpointError, resolve

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class WordPieceTokenizer:
    """A thin, explicit wrapper over a `tokenizers.Tokenizer` holding a BERT WordPiece pipeline."""

    def __init__(self, backend: Tokenizer):
        self.backend = backend
        for token in SPECIAL_TOKENS:
            if backend.token_to_id(token) is None:
                raise ValueError(f"the vocabulary has no {token} token")
        self.pad_token_id = backend.token_to_id("[PAD]")
        self.mask_token_id = backend.token_to_id("[MASK]")
        self.cls_token_id = backend.token_to_id("[CLS]")
        self.sep_token_id = backend.token_to_id("[SEP]")
        self.unk_token_id = backend.token_to_id("[UNK]")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, lowercase: bool = True) -> "WordPieceTokenizer":
        """A folder (or registered name) with tokenizer.json, or with only vocab.txt."""
        folder = resolve(name_or_path)
        if (folder / "tokenizer.json").is_file():
            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")))
        if (folder / "vocab.txt").is_file():
            return cls.from_vocab(folder / "vocab.txt", lowercase=lowercase)
        raise CheckpointError(f"{folder}: no tokenizer.json or vocab.txt in this folder")

    @classmethod
    def from_vocab(cls, vocab_file: str | Path, lowercase: bool = True) -> "WordPieceTokenizer":
        wp = BertWordPieceTokenizer(str(vocab_file), lowercase=lowercase)
        return cls(wp._tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def tokenize(self, text: str) -> list[str]:
        """WordPiece pieces of one text, without [CLS]/[SEP]."""
        return self.backend.encode(text, add_special_tokens=False).tokens

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __call__(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        max_length: int = 512,
    ) -> dict[str, torch.Tensor]:
        """Encode a batch (padded to its longest member): input_ids, token_type_ids, attention_mask."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        self.backend.enable_truncation(max_length, strategy="longest_first")
        self.backend.enable_padding(pad_id=self.pad_token_id, pad_token="[PAD]")
        try:
            inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
            encodings = self.backend.encode_batch(inputs)
        finally:
            self.backend.no_truncation()
            self.backend.no_padding()
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }
