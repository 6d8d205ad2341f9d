"""Pretraining examples as BERT made them: sentence pairs for NSP, masked tokens for MLM.

The recipe (Devlin et al., 2019, §3.1 and Appendix A.1; the instance builder follows
`create_pretraining_data.py` in the google-research/bert repository, rewritten here as small
functions with the same semantics and the same knobs):

1. Pairs (`create_instances`). Walk through each document sentence by sentence, gathering a chunk
   until it holds `max_seq_length - 3` tokens (room for [CLS] [SEP] [SEP]); with probability
   `short_seq_prob` a document aims at a shorter random length instead, so that the model also sees
   the short inputs of fine-tuning. Cut the chunk at a random sentence boundary into A and B.
   With probability 0.5 (`nsp_prob`) B is replaced by text from a random position in ANOTHER
   document (NotNext), and the sentences of the chunk that B would have used are put back to start
   the next chunk. (The reference also makes every single-sentence chunk NotNext, which tilts the
   labels to about 56 : 44; see `balanced_nsp`.) Then `truncate_seq_pair` trims the
   longer side, one token at a time from the front or the back at random, until the pair fits.
   The corpus is walked `dupe_factor` times, each time cut differently.
2. Inputs (`PretrainingDataset`): [CLS] A [SEP] B [SEP], segment ids 0 for [CLS] A [SEP] and 1 for
   B [SEP]; `next_sentence_label` 0 = IsNext (B follows A), 1 = NotNext, the reference's convention.
3. Masks (`mask_tokens`): choose 15% (`masked_lm_prob`) of the tokens that are not special, an
   exact count per sequence (at least one, at most `max_predictions_per_seq`); of the chosen,
   80% become [MASK], 10% a random token, 10% stay as they are; the labels hold the original id at
   chosen positions and -100 (ignored by the loss) everywhere else. With whole-word masking the
   choice is made over words (a piece and the `##` pieces after it) and takes every piece of a word.
   The original fixed the masks once, `dupe_factor` times; here `MLMCollator` draws fresh masks
   every epoch (dynamic masking, Liu et al., 2019, RoBERTa §4.1), from a seed made of
   (seed, epoch, example index), so that a batch is the same in every process and after a resume.

Differences from the reference, on purpose: the number to mask counts only maskable tokens (the
reference counted [CLS] and [SEP] too); [UNK] and [PAD] are never masked and random replacements
never draw a special token; a NotNext B always comes from another document (the reference gave up
after ten tries); whole words never run across [SEP]; by default (`balanced_nsp=True`) a chunk
holds at least two sentences, so IsNext and NotNext come out 50 : 50 as the paper describes.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch.utils.data import Dataset

from .seeding import mix_seed

if TYPE_CHECKING:
    from ..tokenizer import WordPieceTokenizer

IGNORE_INDEX = -100  # the label cross-entropy skips (torch.nn.CrossEntropyLoss's ignore_index)
IS_NEXT, NOT_NEXT = 0, 1

TokenizedDocument = list[list[int]]  # sentences of token ids, no specials


@dataclass
class Instance:
    """One NSP pair of token ids (no specials); `is_random_next` means B is NotNext."""

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool


# --- 1. sentence pairs ---------------------------------------------------------------------------


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer of A and B (in place), from the front or the back at random, until they fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _random_segment(
    documents: Sequence[TokenizedDocument], document_index: int, target_length: int, rng: random.Random
) -> list[int]:
    """Sentences from a random start in a random OTHER document, until `target_length` tokens."""
    other = rng.randrange(len(documents) - 1)
    if other >= document_index:  # skip our own document: uniform over the others
        other += 1
    document = documents[other]
    tokens: list[int] = []
    for sentence in document[rng.randrange(len(document)) :]:
        tokens.extend(sentence)
        if len(tokens) >= target_length:
            break
    return tokens


def instances_from_document(
    documents: Sequence[TokenizedDocument],
    document_index: int,
    max_seq_length: int,
    short_seq_prob: float,
    nsp_prob: float,
    rng: random.Random,
    balanced_nsp: bool = True,
) -> list[Instance]:
    """The NSP pairs that one pass makes from `documents[document_index]`.

    `balanced_nsp=False` is the reference exactly: a chunk that closes with a single sentence (one
    sentence longer than the target, or the last one of the document) always becomes NotNext,
    so NotNext outnumbers IsNext (about 56 : 44 on the news corpus at length 128).
    `balanced_nsp=True` (the default) closes a chunk only once it has two sentences and drops a
    lone sentence left at the end of a document, so every pair is IsNext with probability
    exactly 1 - `nsp_prob`.
    """
    document = documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    chunk: list[list[int]] = []  # sentences gathered for the next pair
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        full = chunk_length >= target_length and (len(chunk) >= 2 or not balanced_nsp)
        if i == len(document) - 1 or full:
            if len(chunk) == 1 and balanced_nsp:
                break  # a lone last sentence has no next sentence: not used as A in this pass
            # A takes the first a_end sentences of the chunk (at least one).
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            if len(chunk) == 1 or rng.random() < nsp_prob:
                is_random_next = True
                tokens_b = _random_segment(documents, document_index, target_length - len(tokens_a), rng)
                i -= len(chunk) - a_end  # put back the sentences B did not use
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            instances.append(Instance(tokens_a, tokens_b, is_random_next))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def create_instances(
    tokenized_docs: Sequence[TokenizedDocument],
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    nsp_prob: float = 0.5,
    dupe_factor: int = 1,
    seed: int = 0,
    balanced_nsp: bool = True,
) -> list[Instance]:
    """NSP pairs from documents of tokenised sentences, in a shuffled order fixed by `seed`.

    `nsp_prob` is the probability that B is a random segment from another document (NotNext);
    `balanced_nsp` is explained in `instances_from_document`.
    Empty sentences and empty documents are dropped first; at least two documents must remain.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for A and B beside 3 specials")
    if dupe_factor < 1:
        raise ValueError(f"dupe_factor must be at least 1, not {dupe_factor}")
    documents = [[list(s) for s in doc if len(s)] for doc in tokenized_docs]
    documents = [doc for doc in documents if doc]
    if len(documents) < 2:
        raise ValueError("need at least two non-empty documents: NotNext pairs take B from another one")
    rng = random.Random(seed)
    rng.shuffle(documents)
    instances: list[Instance] = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(
                instances_from_document(
                    documents, index, max_seq_length, short_seq_prob, nsp_prob, rng, balanced_nsp
                )
            )
    rng.shuffle(instances)
    return instances


def tokenize_documents(
    documents: Sequence[Sequence[str]], tokenizer: "WordPieceTokenizer", batch_size: int = 20_000
) -> list[TokenizedDocument]:
    """Documents of sentences -> documents of token-id lists (batch-encoded in Rust, all cores)."""
    sentences = [s for doc in documents for s in doc]
    ids: list[list[int]] = []
    for start in range(0, len(sentences), batch_size):
        ids.extend(tokenizer.encode_batch_ids(sentences[start : start + batch_size]))
    out, pos = [], 0
    for doc in documents:
        out.append(ids[pos : pos + len(doc)])
        pos += len(doc)
    return out


# --- 2. model inputs -----------------------------------------------------------------------------


class PretrainingDataset(Dataset):
    """Instances as model inputs: [CLS] A [SEP] B [SEP] with segment ids and the NSP label."""

    def __init__(self, instances: Sequence[Instance], cls_id: int, sep_id: int):
        self.instances = list(instances)
        self.cls_id = int(cls_id)
        self.sep_id = int(sep_id)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} examples")
        i = i % len(self)
        inst = self.instances[i]
        a, b = inst.tokens_a, inst.tokens_b
        input_ids = [self.cls_id, *a, self.sep_id, *b, self.sep_id]  # (T,)
        token_type_ids = [0] * (len(a) + 2) + [1] * (len(b) + 1)  # (T,)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "token_type_ids": torch.tensor(token_type_ids, dtype=torch.long),
            "next_sentence_label": NOT_NEXT if inst.is_random_next else IS_NEXT,
            "index": i,
        }

    def stats(self) -> dict[str, float]:
        """Examples, tokens (with specials), mean length, share of IsNext pairs."""
        n = len(self)
        tokens = sum(len(x.tokens_a) + len(x.tokens_b) + 3 for x in self.instances)
        positives = sum(not x.is_random_next for x in self.instances)
        return {
            "examples": n,
            "tokens": tokens,
            "mean_length": tokens / n if n else 0.0,
            "is_next_share": positives / n if n else 0.0,
        }


def build_pretraining_dataset(
    documents: Sequence[Sequence[str]],
    tokenizer: "WordPieceTokenizer",
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    dupe_factor: int = 1,
    seed: int = 0,
    nsp_prob: float = 0.5,
    balanced_nsp: bool = True,
) -> PretrainingDataset:
    """Documents of sentences -> a `PretrainingDataset` of NSP pairs (masks come from `MLMCollator`)."""
    tokenized = tokenize_documents(documents, tokenizer)
    instances = create_instances(
        tokenized, max_seq_length, short_seq_prob, nsp_prob, dupe_factor, seed, balanced_nsp
    )
    return PretrainingDataset(instances, tokenizer.cls_token_id, tokenizer.sep_token_id)


# --- 3. masks ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _replacement_pool(vocab_size: int, special_ids: tuple[int, ...]) -> torch.Tensor:
    """Ids a random replacement may draw: the whole vocabulary except the specials."""
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[[i for i in special_ids if 0 <= i < vocab_size]] = False
    return keep.nonzero().squeeze(1)


def _choose_whole_words(
    input_ids: torch.Tensor,
    candidates: torch.Tensor,
    continuation: torch.Tensor,
    num_to_predict: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Positions of whole words, in random word order, adding up to at most `num_to_predict` tokens.

    A word is a candidate piece plus the `##` pieces right after it; a word that would overshoot
    the count is skipped and the next tried, as in the reference.
    """
    n = candidates.numel()
    is_cont = continuation[input_ids[candidates]]  # (n,)
    follows = torch.zeros(n, dtype=torch.bool)
    follows[1:] = candidates[1:] == candidates[:-1] + 1  # no special token in between
    word_of = torch.cumsum(~(is_cont & follows), 0) - 1  # (n,) word number of each candidate
    lengths = torch.bincount(word_of).tolist()
    picked, total = [], 0
    for w in torch.randperm(len(lengths), generator=generator).tolist():
        if total + lengths[w] <= num_to_predict:
            picked.append(w)
            total += lengths[w]
            if total == num_to_predict:
                break
    return candidates[torch.isin(word_of, torch.tensor(picked, dtype=torch.long))]


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    masked_lm_prob: float = 0.15,
    generator: torch.Generator | None = None,
    continuation: torch.Tensor | None = None,
    max_predictions: int | None = None,
    special_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masks for one sequence (T,) (or each row of a (B, T) batch): (masked_input_ids, labels).

    `special_mask` (same shape, bool) marks what is never chosen: [CLS], [SEP], padding, ...
    `continuation` (V,) bool turns on whole-word masking (True for `##` pieces).
    `special_ids` are never drawn as random replacements (default 0..4: bertlab's specials).
    Labels are -100 except at chosen positions, where they hold the original id.
    """
    if input_ids.dim() == 2:
        rows = [
            mask_tokens(ids, sm, vocab_size, mask_token_id, masked_lm_prob, generator, continuation,
                        max_predictions, special_ids)
            for ids, sm in zip(input_ids, special_mask)
        ]
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    masked = input_ids.clone()  # (T,)
    labels = torch.full_like(input_ids, IGNORE_INDEX)  # (T,)
    candidates = (~special_mask).nonzero().squeeze(1)  # (n,) positions that may be chosen
    n = candidates.numel()
    if n == 0:
        return masked, labels
    num_to_predict = max(1, round(n * masked_lm_prob))
    if max_predictions is not None:
        num_to_predict = min(num_to_predict, max_predictions)

    if continuation is None:
        chosen = candidates[torch.randperm(n, generator=generator)[:num_to_predict]]
    else:
        chosen = _choose_whole_words(input_ids, candidates, continuation, num_to_predict, generator)
    labels[chosen] = input_ids[chosen]

    # 80% [MASK], 10% a random token, 10% unchanged: one uniform draw per chosen token.
    u = torch.rand(chosen.numel(), generator=generator)
    masked[chosen[u < 0.8]] = mask_token_id
    to_random = chosen[(u >= 0.8) & (u < 0.9)]
    pool = _replacement_pool(int(vocab_size), tuple(special_ids) if special_ids is not None else tuple(range(5)))
    draws = torch.randint(len(pool), (to_random.numel(),), generator=generator)
    masked[to_random] = pool[draws]
    return masked, labels


def example_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of example `index`'s masks in `epoch`: a fixed integer hash, the same everywhere."""
    return mix_seed(seed, epoch, index)


class MLMCollator:
    """Pad a list of examples into a batch and mask each example afresh for the current epoch.

    Give a tokenizer (for vocab size, [PAD], [MASK], the specials and the `##` pieces) or those ids.
    Example i's masks depend only on (seed, epoch, i), never on the batch it lands in or the process
    that builds it: exact resumes and DDP ranks agree. Call `set_epoch` at the start of each epoch.

    Returns LongTensors: input_ids, token_type_ids, attention_mask, labels (B, T), and
    next_sentence_label (B,) when the examples carry one.
    """

    def __init__(
        self,
        tokenizer: "WordPieceTokenizer | None" = None,
        *,
        masked_lm_prob: float = 0.15,
        whole_word_mask: bool = False,
        seed: int = 0,
        pad_to_multiple_of: int | None = None,
        max_predictions_per_seq: int | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        mask_token_id: int | None = None,
        special_ids: Sequence[int] | None = None,
        continuation: torch.Tensor | None = None,
    ):
        if tokenizer is not None:
            vocab_size = tokenizer.vocab_size if vocab_size is None else vocab_size
            pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
            mask_token_id = tokenizer.mask_token_id if mask_token_id is None else mask_token_id
            special_ids = tokenizer.special_ids if special_ids is None else special_ids
            if whole_word_mask and continuation is None:
                continuation = tokenizer.continuation_mask
        missing = [k for k, v in dict(vocab_size=vocab_size, pad_token_id=pad_token_id,
                                      mask_token_id=mask_token_id, special_ids=special_ids).items() if v is None]
        if missing:
            raise ValueError(f"MLMCollator needs a tokenizer or {', '.join(missing)}")
        if whole_word_mask and continuation is None:
            raise ValueError("whole_word_mask needs the tokenizer or a continuation mask over the vocabulary")
        if not 0.0 < masked_lm_prob < 1.0:
            raise ValueError(f"masked_lm_prob must lie in (0, 1), not {masked_lm_prob}")
        self.vocab_size = int(vocab_size)
        self.pad_token_id = int(pad_token_id)
        self.mask_token_id = int(mask_token_id)
        self.special_ids = torch.tensor(sorted(set(int(i) for i in special_ids) | {int(pad_token_id)}))
        self.continuation = continuation if whole_word_mask else None
        self.masked_lm_prob = masked_lm_prob
        self.whole_word_mask = whole_word_mask
        self.seed = int(seed)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.max_predictions_per_seq = max_predictions_per_seq
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def mask_example(self, input_ids: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked_input_ids, labels) of one unpadded example (T,), for the current epoch."""
        generator = torch.Generator().manual_seed(example_seed(self.seed, self.epoch, index))
        special_mask = torch.isin(input_ids, self.special_ids)
        return mask_tokens(
            input_ids, special_mask, self.vocab_size, self.mask_token_id, self.masked_lm_prob,
            generator, self.continuation, self.max_predictions_per_seq, self.special_ids.tolist(),
        )

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("an empty batch")
        ids = [torch.as_tensor(ex["input_ids"], dtype=torch.long) for ex in examples]
        B, T = len(ids), max(x.numel() for x in ids)
        if self.pad_to_multiple_of:
            T = -(-T // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)  # (B, T)
        token_type_ids = torch.zeros(B, T, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros(B, T, dtype=torch.long)  # (B, T)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)  # (B, T)
        for row, (ex, x) in enumerate(zip(examples, ids)):
            if "index" not in ex:
                raise KeyError("each example needs its dataset 'index' (it seeds the example's masks)")
            masked, lab = self.mask_example(x, int(ex["index"]))
            L = x.numel()
            input_ids[row, :L] = masked
            labels[row, :L] = lab
            attention_mask[row, :L] = 1
            if "token_type_ids" in ex:
                token_type_ids[row, :L] = torch.as_tensor(ex["token_type_ids"], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        if all("next_sentence_label" in ex for ex in examples):
            batch["next_sentence_label"] = torch.tensor(
                [int(ex["next_sentence_label"]) for ex in examples], dtype=torch.long
            )
        return batch
