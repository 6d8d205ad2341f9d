"""Scaled dot-product attention, written out, and BERT's multi-head self-attention.

Two paths compute the same thing:

* ``explicit``: softmax(Q K^T / sqrt(d_k) + M) V, line by line, returning the attention
  probabilities so that a chapter can plot them;
* ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`, which dispatches to fused
  kernels (FlashAttention / memory-efficient attention on a GPU, a fused C++ kernel on a CPU).

Both take the padding mask in the same additive form (0 where a key may be attended to, a large
negative number where it may not), so they agree to rounding error.

:class:`Unpadded` is the fast path for padded batches: the per-token work (projections,
feed-forward, LayerNorm, dropout) runs on the real tokens only, packed into one (N, C) matrix, and
only the attention itself sees the padded (B, T) layout again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import BertConfig


@dataclass
class Unpadded:
    """Where the real tokens of a padded (B, T) batch sit, to run per-token work on them alone.

    With sentences of uneven length most of a padded batch can be padding; everything in a BERT
    layer except attention treats each token on its own, so it can run on the N real tokens
    packed together ((N, C) instead of (B, T, C)) and give the same numbers at every real token.
    """

    index: torch.Tensor  # (N,) flat positions b * T + t of the real tokens, in row-major order
    batch_size: int
    seq_len: int

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "Unpadded":
        B, T = attention_mask.shape
        return cls(attention_mask.reshape(-1).nonzero().squeeze(1), B, T)

    @property
    def positions(self) -> torch.Tensor:
        return self.index % self.seq_len  # (N,) position of each real token in its row

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...): the real tokens only."""
        return x.reshape(self.batch_size * self.seq_len, *x.shape[2:]).index_select(0, self.index)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...), zeros at the padding."""
        out = x.new_zeros(self.batch_size * self.seq_len, *x.shape[1:])
        return out.index_copy(0, self.index, x).view(self.batch_size, self.seq_len, *x.shape[1:])


def additive_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) of 1 = token, 0 = padding  ->  (B, 1, 1, T) of 0 / most-negative, added to scores.

    The most negative finite number rather than -inf keeps a fully padded row finite (softmax
    of equal scores is uniform) instead of turning it into NaN.
    """
    padded = attention_mask[:, None, None, :] == 0
    return torch.zeros(padded.shape, dtype=dtype, device=attention_mask.device).masked_fill(padded, torch.finfo(dtype).min)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out. q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv).

    ``mask`` is added to the scores and must broadcast to (..., Tq, Tk).
    Returns the output (..., Tq, dv) and the probabilities (..., Tq, Tk).
    """
    d_k = q.size(-1)
    scores = (q @ k.transpose(-2, -1)) * d_k**-0.5  # (..., Tq, Tk), i.e. divided by sqrt(d_k)
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v, probs


class MultiHeadSelfAttention(nn.Module):
    """Q, K, V projections, split into heads, attention per head, heads concatenated.

    The output projection W^O is not here: following the reference implementation's parameter
    names it lives in ``attention.output.dense``, next to the residual connection and LayerNorm
    (see :class:`bertlab.model.BertSelfOutput`).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.dropout_p = config.attention_probs_dropout_prob
        self.implementation = config.attn_implementation
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        unpadded: Unpadded | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (B, T, C) -> context (B, T, C); or, with `unpadded`, packed (N, C) -> (N, C)."""
        q, k, v = self.query(hidden_states), self.key(hidden_states), self.value(hidden_states)
        if unpadded is not None:  # projections ran on the real tokens; attention needs the (B, T) layout
            q, k, v = unpadded.pad(q), unpadded.pad(k), unpadded.pad(v)
        B, T, C = q.shape  # (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, d)
        dropout_p = self.dropout_p if self.training else 0.0

        if self.implementation == "explicit" or output_attentions:
            context, probs = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            if mask is not None:
                mask = mask.to(q.dtype)
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            probs = None
        context = context.transpose(1, 2).reshape(B, T, C)  # concatenate heads: (B, T, C)
        if unpadded is not None:
            context = unpadded.unpad(context)  # (N, C)
        return context, (probs if output_attentions else None)
