"""WordPiece tokenizers: train one from a corpus, or load an existing vocabulary.

BERT's tokenizer is a pipeline of four steps (Devlin et al., 2019, §3 and the google-research/bert
`tokenization.py`), each of which is one component of the `tokenizers` library:

1. normalise: remove control characters, put spaces around every CJK character (so Chinese is
   tokenised one character per token), optionally lower-case and strip accents;
2. pre-tokenise: split on whitespace and punctuation;
3. WordPiece: split each word greedily into the longest pieces in the vocabulary, marking pieces
   that continue a word with `##` ("unaffable" -> "un", "##aff", "##able");
4. post-process: add the specials, [CLS] A [SEP] (B [SEP]), with segment (token type) ids 0 for
   [CLS] A [SEP] and 1 for B [SEP]; an attention mask of 1 on tokens and 0 on padding.

A vocabulary trained here (`train_wordpiece`, with the Rust trainer of `tokenizers`) puts the five
specials first, [PAD] [UNK] [CLS] [SEP] [MASK] = ids 0..4, comes out the same on every run, and
saves in the Hugging Face layout (`vocab.txt`, `tokenizer.json`, `tokenizer_config.json`,
`special_tokens_map.json`), so `transformers.AutoTokenizer.from_pretrained(folder)` reads it back
with the same ids.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers.implementations import BertWordPieceTokenizer

from .checkpoint import CheckpointError, resolve
from .common import BertlabError, atomic_write_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION_PREFIX = "##"
# Below this there is no room for an alphabet beside the five specials.
MIN_VOCAB_SIZE = 100
MODEL_MAX_LENGTH = 512


class TokenizerError(BertlabError):
    """A vocabulary or tokenizer settings that cannot make a BERT WordPiece tokenizer."""


class WordPieceTokenizer:
    """A thin, explicit wrapper over a `tokenizers.Tokenizer` holding a BERT WordPiece pipeline."""

    def __init__(self, backend: Tokenizer):
        self.backend = backend
        for token in SPECIAL_TOKENS:
            if backend.token_to_id(token) is None:
                raise TokenizerError(f"the vocabulary has no {token} token")
        # A tokenizer.json may carry its own truncation/padding (MiniLM's pads to 128): this wrapper
        # sets them per call instead, so corpus tokenisation never cuts a sentence.
        backend.no_truncation()
        backend.no_padding()
        self.pad_token_id = backend.token_to_id("[PAD]")
        self.unk_token_id = backend.token_to_id("[UNK]")
        self.cls_token_id = backend.token_to_id("[CLS]")
        self.sep_token_id = backend.token_to_id("[SEP]")
        self.mask_token_id = backend.token_to_id("[MASK]")
        self._continuation: torch.Tensor | None = None

    # --- construction --------------------------------------------------------------------------

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

    # --- vocabulary ----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab()

    @property
    def lowercase(self) -> bool:
        """Whether the normaliser lower-cases (True when there is no BERT normaliser to ask)."""
        normalizer = self.backend.normalizer
        return bool(getattr(normalizer, "lowercase", True))

    @property
    def strip_accents(self) -> bool | None:
        """BERT's convention: None means "strip accents when lower-casing"."""
        return getattr(self.backend.normalizer, "strip_accents", None)

    @property
    def special_ids(self) -> list[int]:
        """Ids of [PAD] [UNK] [CLS] [SEP] [MASK], in that order."""
        return [self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id]

    @property
    def continuation_mask(self) -> torch.Tensor:
        """(V,) bool: True where the token continues a word (starts with ##); for whole-word masking."""
        if self._continuation is None:
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            for token, i in self.get_vocab().items():
                if token.startswith(CONTINUATION_PREFIX) and len(token) > len(CONTINUATION_PREFIX):
                    mask[i] = True
            self._continuation = mask
        return self._continuation

    # --- encoding ------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """WordPiece pieces of one text, without [CLS]/[SEP]."""
        return self.backend.encode(text, add_special_tokens=False).tokens

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        ids = [self.backend.token_to_id(t) for t in tokens]
        return [self.unk_token_id if i is None else i for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def encode_batch_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts, no specials, no truncation: fast corpus tokenisation.

        The backend encodes the batch on all cores (Rust); offsets are not computed.
        """
        texts = list(texts)
        if not texts:
            return []
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)  # fast: tokenizers>=0.20
        encodings = encode(texts, add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode(self, text: str, pair: str | None = None, max_length: int | None = None) -> dict[str, list[int]]:
        """One text (or pair) -> plain lists: input_ids, token_type_ids, attention_mask (no padding).

        With `max_length`, the longer of the two segments is cut first (longest-first), as in BERT.
        """
        if max_length is not None:
            self.backend.enable_truncation(max_length, strategy="longest_first")
        try:
            e = self.backend.encode(text, pair)
        finally:
            self.backend.no_truncation()
        return {"input_ids": e.ids, "token_type_ids": e.type_ids, "attention_mask": e.attention_mask}

    def __call__(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        max_length: int = 512,
    ) -> dict[str, torch.Tensor]:
        """Encode a batch (padded to its longest member): input_ids, token_type_ids, attention_mask.

        Every text (or pair) is cut to `max_length` tokens, [CLS] and [SEP]s included (longest-first
        for pairs): 512, BERT's number of positions, unless given. For documents longer than that,
        see `bertlab.finetune`'s `--long-text chunk`, which reads them in overlapping windows.
        """
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

    # --- saving --------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json.

        Each file is written to a temporary name in the folder and then renamed over the old one,
        so a crash never leaves a half-written file behind.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = self.get_vocab()
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise TokenizerError("the vocabulary ids are not 0..V-1 without gaps; cannot write vocab.txt")
        specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                    "cls_token": "[CLS]", "mask_token": "[MASK]"}
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.lowercase,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": True,
            "model_max_length": MODEL_MAX_LENGTH,
            "clean_up_tokenization_spaces": False,
            **specials,
        }
        files = {
            "vocab.txt": "".join(token + "\n" for token, _ in by_id),
            "tokenizer.json": self.backend.to_str(pretty=True),
            "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(specials, indent=2) + "\n",
        }
        for name, text in files.items():
            atomic_write_text(folder / name, text)
        return folder


# --- training ------------------------------------------------------------------------------------


def bert_pipeline(
    model: models.Model, lowercase: bool = True, strip_accents: bool | None = None
) -> Tokenizer:
    """A `Tokenizer` with BERT's normaliser, pre-tokeniser, post-processor and decoder around `model`.

    The post-processor needs the ids of [CLS] and [SEP], which `train_wordpiece` fixes at 2 and 3.
    """
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = SPECIAL_TOKENS.index("[CLS]"), SPECIAL_TOKENS.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)
    return tok


def _flatten_texts(texts: Iterable, counter: list[int]) -> Iterator[str]:
    """Yield the strings of `texts`; a document (a list of sentences) is read sentence by sentence."""
    for item in texts:
        if isinstance(item, str):
            parts: Iterable = (item,)
        elif isinstance(item, (list, tuple)):
            parts = item
        else:
            raise TypeError(f"expected str or a list of str, got {type(item).__name__}")
        for text in parts:
            if not isinstance(text, str):
                raise TypeError(f"expected str, got {type(text).__name__}")
            if text.strip():
                counter[0] += 1
                yield text


def _is_punctuation(char: str) -> bool:
    """BERT's definition: ASCII symbols that are not letters, digits or space, and Unicode P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def training_alphabet(
    texts: Sequence[str], normalizer: normalizers.Normalizer, limit_alphabet: int
) -> tuple[list[str], list[str]]:
    """(alphabet, continuation characters) that WordPiece training starts from, fixed in advance.

    The alphabet is the `limit_alphabet` most frequent characters after normalisation (ties broken
    by code point). Continuation characters are those that can follow another character inside a
    word (not punctuation, not CJK), and so also need a `##` form.
    """
    raw: Counter[str] = Counter()
    for text in texts:
        raw.update(text)
    counts: Counter[str] = Counter()
    for char, n in raw.items():  # BERT's normaliser works character by character
        for c in normalizer.normalize_str(char):
            if not c.isspace():
                counts[c] += n
    alphabet = sorted(sorted(counts, key=lambda c: (-counts[c], c))[:limit_alphabet])
    continuation = [c for c in alphabet if not _is_punctuation(c) and normalizer.normalize_str(c) == c]
    return alphabet, continuation


def train_wordpiece(
    texts: Iterable[str] | Iterable[Sequence[str]],
    vocab_size: int = 8000,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    show_progress: bool = False,
) -> WordPieceTokenizer:
    """Train a BERT WordPiece vocabulary on `texts` (strings, or documents = lists of sentences).

    `strip_accents=None` follows BERT: accents are stripped exactly when lower-casing. The ids:
    the five specials 0..4, then the `##` forms of the alphabet's letters, then the alphabet (at
    most `limit_alphabet` characters, the most frequent), then the merged pieces, up to `vocab_size`
    in all (fewer when no pair occurs `min_frequency` times any more).

    The vocabulary is grown the way the `tokenizers` library's WordPiece trainer grows it: by
    merging the most frequent adjacent pair (BPE-style counting), not by the likelihood criterion
    of Schuster & Nakajima (2012); encoding is BERT's greedy longest-match-first with `##` pieces.

    Deterministic: the same texts give the same vocabulary, ids included. (The Rust trainer alone
    numbers the `##` characters in hash-map order and breaks ties between merges by those numbers,
    tokenizers issue #1794; fixing the alphabet and the `##` characters in advance removes that.)
    The texts are held in memory for the two passes this takes.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise TokenizerError(
            f"vocab_size {vocab_size} is too small: it must hold the {len(SPECIAL_TOKENS)} special "
            f"tokens and an alphabet (at least {MIN_VOCAB_SIZE})"
        )
    counter = [0]
    texts = list(_flatten_texts(texts, counter))
    if counter[0] == 0:
        raise TokenizerError("no text to train on: every text was empty")
    tok = bert_pipeline(
        models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=CONTINUATION_PREFIX),
        lowercase=lowercase,
        strip_accents=strip_accents,
    )
    alphabet, continuation = training_alphabet(texts, tok.normalizer, limit_alphabet)
    fixed = list(SPECIAL_TOKENS) + [CONTINUATION_PREFIX + c for c in continuation]
    if len(fixed) + len(alphabet) >= vocab_size:
        raise TokenizerError(
            f"vocab_size {vocab_size} cannot hold the specials and an alphabet of {len(alphabet)} "
            f"characters ({len(fixed) + len(alphabet)} tokens with the ## forms): raise vocab_size "
            f"or lower limit_alphabet"
        )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=show_progress,
        special_tokens=fixed,  # the ## characters ride along here only to get fixed ids
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        continuing_subword_prefix=CONTINUATION_PREFIX,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Rebuild around the learnt vocabulary so that only the five specials are special tokens.
    vocab = tok.get_vocab(with_added_tokens=False)
    model = models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix=CONTINUATION_PREFIX)
    tok = bert_pipeline(model, lowercase=lowercase, strip_accents=strip_accents)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(token) == i, (token, tok.token_to_id(token))
    return WordPieceTokenizer(tok)
