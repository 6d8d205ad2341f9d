"""Speed paths: the same numbers as model.py's plain computation, with less work or less memory.

Each is switched on by a field of `BertConfig`, saved in config.json, and tested equal to the
plain path (tests/test_fast.py). `bertlab pretrain`, `bertlab finetune` and `bertlab bench` turn
both on; a model built by hand uses the plain path unless its config says otherwise.

* `unpad_inputs`: with sentences of uneven length much of a padded batch is padding. Everything in
  a BERT layer except attention treats each token on its own, so `unpadded_encoder` runs the
  embeddings, projections, feed-forward, LayerNorm and dropout on the N real tokens packed into
  one (N, H) matrix, and only attention sees the padded (B, T) layout. Outputs at real tokens are
  those of the plain path; at padding positions they come back as zeros.
* `fused_mlm_loss`: while training, `LinearCrossEntropy` computes the MLM projection and its
  cross-entropy a block of rows at a time and makes the gradients in the same pass, so the
  (N, V) logits are never kept.

This module uses the model's layers through their attributes and imports nothing from model.py:
model.py imports it, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attention import additive_padding_mask

# --- unpadding -------------------------------------------------------------------------------


@dataclass
class Unpadded:
    """Where the real tokens of a padded (B, T) batch sit, to run per-token work on them alone."""

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


def unpadded_encoder(bert, input_ids, attention_mask, token_type_ids=None, output_attentions=False,
                     output_hidden_states=False):
    """`BertModel`'s embeddings and encoder on the real tokens only.

    Returns what `BertEncoder` returns, in the padded layout: the last hidden state (B, T, H), the
    list of hidden states (B, T, H) if asked for, the list of attention probabilities if asked for.
    """
    u = Unpadded.from_mask(attention_mask)
    emb = bert.embeddings
    emb.position_embeddings(input_ids.shape[1])  # checks the length against the positions learned
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = emb.word_embeddings(u.unpad(input_ids))  # (N, H)
    x = x + emb.token_type_embeddings(u.unpad(token_type_ids))
    # Each real token's own position. An embedding lookup, not table[positions]: the backward of
    # advanced indexing accumulates with atomic adds on a CPU (not bit-reproducible).
    x = x + F.embedding(u.positions, emb.position_embeddings.weight)
    x = emb.dropout(emb.LayerNorm(x))
    mask = additive_padding_mask(attention_mask, x.dtype)  # (B, 1, 1, T)
    hidden = [u.pad(x)] if output_hidden_states else None
    all_probs = [] if output_attentions else None
    for layer in bert.encoder.layer:
        sa = layer.attention.self
        q, k, v = (u.pad(linear(x)) for linear in (sa.query, sa.key, sa.value))  # projected (N, H), then (B, T, H)
        context, probs = sa.attend(q, k, v, mask, output_attentions)  # (B, T, H)
        x = layer.attention.output(u.unpad(context), x)  # (N, H)
        x = layer.output(layer.intermediate(x), x)  # (N, H)
        if output_hidden_states:
            hidden.append(u.pad(x))
        if output_attentions:
            all_probs.append(probs)
    return u.pad(x), hidden, all_probs


# --- the fused MLM loss ----------------------------------------------------------------------


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of `hidden @ weight.T + bias` against `targets`, gradients made in the forward pass.

    The (N, V) logits are computed a block of rows at a time, and each block goes through memory as
    few times as possible: one row-wise softmax p (max, exp and sum of a row while it sits in cache),
    then p is read by the two matrix products and the column sum that give the gradients of `hidden`,
    `weight` and `bias`. The -1 of the one-hot and the 1/N of the mean are applied to the small
    results, not to the (n_b, V) block: d(loss)/d(logits) = (p - onehot) / N, so

        grad_hidden = (p @ W - W[t]) / N,   grad_W += (p.T @ h - onehot.T @ h) / N,   grad_b += (sum p - counts) / N.

    The loss of a row is -log p[t]; where p[t] underflows (a logit gap above about 87, far outside
    any sane training) that row's log-sum-exp is recomputed exactly from its logits. No (N, V)
    matrix is kept for the backward pass, which only scales the three stored gradients.
    Returns (loss, argmax predictions (N,)).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, block_rows):
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        grad_bias = torch.zeros_like(bias)
        predictions = torch.empty(n, dtype=torch.long, device=hidden.device)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n, block_rows):
            stop = min(n, start + block_rows)
            h, t = hidden[start:stop], targets[start:stop]
            rows = torch.arange(stop - start, device=hidden.device)
            logits = F.linear(h, weight, bias).float()  # (n_b, V)
            predictions[start:stop] = logits.argmax(-1)
            p = torch.softmax(logits, -1)  # one row-wise pass
            p_target = p[rows, t]
            nll = -p_target.log()
            bad = p_target < 1e-30  # underflow: take these rows' loss from the logits themselves
            if bool(bad.any()):
                nll[bad] = torch.logsumexp(logits[bad], -1) - logits[bad, t[bad]]
            loss += nll.sum()
            del logits
            p = p.to(hidden.dtype)
            w_t = weight[t]  # (n_b, H): the rows of the one-hot's product
            grad_hidden[start:stop] = torch.addmm(w_t, p, weight, beta=-1.0, alpha=1.0).div_(n)
            grad_weight.addmm_(p.t(), h, alpha=1.0 / n)
            grad_weight.index_add_(0, t, h, alpha=-1.0 / n)
            grad_bias.add_(p.sum(0), alpha=1.0 / n)
            grad_bias.index_add_(0, t, torch.full_like(t, 1, dtype=bias.dtype), alpha=-1.0 / n)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.mark_non_differentiable(predictions)
        return loss / n, predictions

    @staticmethod
    def backward(ctx, grad_loss, grad_predictions):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, grad_bias * grad_loss, None, None


# Rows of logits per block in the fused loss: about 4M numbers (16 MB in float32) per block.
FUSED_BLOCK_ELEMENTS = 1 << 22


def fusable(hidden: torch.Tensor, head, targets: torch.Tensor) -> bool:
    """Whether the fused loss applies: gradients are being recorded (training), there is something
    to predict, and no autocast is active (under autocast the plain path runs in low precision)."""
    return (
        torch.is_grad_enabled()
        and targets.numel() > 0
        and not torch.is_autocast_enabled(hidden.device.type)
        and (hidden.requires_grad or head.decoder.weight.requires_grad)
    )


def fused_mlm_loss(head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLM head's cross-entropy at the gathered masked positions hidden (N, H) against targets
    (N,), fused: (mean loss, argmax predictions (N,)). Same numbers as `F.cross_entropy(head(hidden),
    targets)` and its gradients."""
    block_rows = max(1, FUSED_BLOCK_ELEMENTS // head.decoder.weight.shape[0])
    return LinearCrossEntropy.apply(head.transform(hidden), head.decoder.weight, head.bias, targets, block_rows)
