import os

import pytest
import torch

# Tests never reach the network: a Hub name must fail at once, not retry for half a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_batch(vocab_size: int, batch: int = 3, length: int = 12, seed: int = 1):
    """A padded batch of sentence pairs: [CLS] A [SEP] B [SEP] [PAD]..., rows of different lengths."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch, length), generator=g)
    token_type_ids = torch.zeros(batch, length, dtype=torch.long)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(batch):
        real = length - 3 * row  # row 0 full, later rows padded
        split = real // 2
        input_ids[row, 0] = 2  # stands in for [CLS]
        input_ids[row, split] = 3  # [SEP]
        input_ids[row, real - 1] = 3
        token_type_ids[row, split + 1 : real] = 1
        input_ids[row, real:] = 0
        attention_mask[row, real:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def at_real_tokens(x, batch):
    """Per-token outputs (B, T, ...) at the real tokens only, (N, ...); other outputs unchanged.

    With `unpad_inputs` (bertlab.fast) bertlab runs padded batches unpadded and returns zeros at padding
    positions, where the reference returns values nobody should use: compare real tokens."""
    mask = batch["attention_mask"].bool()
    if x.dim() >= 2 and tuple(x.shape[:2]) == tuple(mask.shape):
        return x[mask]
    return x
