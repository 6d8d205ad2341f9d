"""Position information: the sinusoidal table of Vaswani et al. (2017) and BERT's learned table.

BERT itself learns its position embeddings (Devlin et al., 2019, §3, "Input/Output
Representations": the input representation is the sum of token, segment and position embeddings);
the fixed sinusoidal table is kept here because the positional-encoding chapter compares the two.
Positions are counted from 0, as everywhere in the book.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(max_len: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """PE[p, 2i] = sin(p / base^(2i/dim)),  PE[p, 2i+1] = cos(p / base^(2i/dim)).  Shape (max_len, dim)."""
    if dim % 2:
        raise ValueError(f"the sinusoidal table needs an even dimension, got {dim}")
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (P, 1)
    inv_freq = torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    angles = position * inv_freq  # (P, dim/2)
    table = torch.empty(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table.float()


class LearnedPositionEmbedding(nn.Embedding):
    """BERT's position embeddings: one trained vector per position 0 .. max_len-1."""

    def __init__(self, max_len: int, dim: int):
        super().__init__(max_len, dim)

    def forward(self, seq_len: int) -> torch.Tensor:  # type: ignore[override]
        if seq_len > self.num_embeddings:
            raise ValueError(f"sequence of {seq_len} tokens is longer than the {self.num_embeddings} positions learned")
        return self.weight[:seq_len]  # (T, H): rows for positions 0 .. T-1
