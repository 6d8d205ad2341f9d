"""Scaled dot-product attention, written out, and BERT's multi-head self-attention.

Two paths compute the same thing:

* ``explicit``: softmax(Q K^T / sqrt(d_k) + M) V, line by line, returning the attention
  probabilities so that a chapter can plot them;
* ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`, which picks a kernel by device
  and mask. On a GPU, FlashAttention takes no arbitrary mask (only ``is_causal``), so with BERT's
  padding mask PyTorch uses the memory-efficient kernel, or the math path where that cannot run;
  on a CPU a fused C++ kernel takes the mask.

Both take the padding mask in the same additive form (0 where a key may be attended to, a large
negative number where it may not), so they agree to rounding error.

Shapes use the book's notation: B batch, T tokens, H hidden size, A heads, d = H / A head size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BertConfig


def additive_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) of 1 = token, 0 = padding  ->  (B, 1, 1, T) of 0 / most-negative, added to scores.

    The most negative finite number rather than -inf keeps a fully padded row finite (softmax
    of equal scores is uniform) instead of turning it into NaN.
    """
    padded = attention_mask[:, None, None, :] == 0
    return torch.zeros(padded.shape, dtype=dtype, device=attention_mask.device).masked_fill(padded, torch.finfo(dtype).min)


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0) -> tuple[torch.Tensor, torch.Tensor]:
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
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, A, T, d)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, H) -> context (B, T, H), and the probabilities (B, A, T, T) if asked for."""
        return self.attend(self.query(x), self.key(x), self.value(x), mask, output_attentions)

    def attend(self, q, k, v, mask=None, output_attentions=False):
        """Projected q, k, v (B, T, H) -> context (B, T, H): split heads, attend, concatenate."""
        B, T, H = q.shape
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, A, T, d)
        dropout_p = self.dropout_p if self.training else 0.0
        if self.implementation == "explicit" or output_attentions:
            context, probs = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            mask = mask.to(q.dtype) if mask is not None else None
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            probs = None
        context = context.transpose(1, 2).reshape(B, T, H)  # concatenate the A heads: (B, T, H)
        return context, (probs if output_attentions else None)
