"""BERT, written from scratch (Devlin et al., 2019), with the reference implementation's names.

Read top to bottom: embeddings -> encoder layer (attention, feed-forward, post-LN residuals)
-> encoder stack -> pooler -> BertModel -> heads (MLM, NSP, classification) -> the task models.
Parameter names match Hugging Face's `modeling_bert.py`, so its checkpoints load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention, Unpadded, additive_padding_mask
from .config import BertConfig
from .positional import LearnedPositionEmbedding


@dataclass
class ModelOutput:
    """What every model returns; fields a model does not compute stay None."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    # With MLM labels: a (B, T) bool tensor, True where `prediction_logits` rows come from,
    # and the argmax token at each of those positions (N,). In training (gradients on, no
    # autocast) the (N, V) MLM logits are not kept, only these predictions: see masked_lm_loss.
    masked_positions: torch.Tensor | None = None
    mlm_predictions: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def activation(name: str):
    # "gelu" is the exact GELU, x * Phi(x), as the reference implementation (transformers) reads the
    # name; Google's original TensorFlow BERT computed its tanh approximation, here "gelu_new".
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    return F.relu


# --- embeddings ------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = LearnedPositionEmbedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                unpadded: Unpadded | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, C); with `unpadded`, the real tokens only: (N, C)."""
        B, T = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        table = self.position_embeddings(T)  # (T, C)
        if unpadded is not None:
            input_ids, token_type_ids = unpadded.unpad(input_ids), unpadded.unpad(token_type_ids)  # (N,)
            # (N, C): each real token's own position. An embedding lookup, not table[positions]: the
            # backward of advanced indexing accumulates with atomic adds on a CPU (not bit-reproducible).
            table = F.embedding(unpadded.positions, self.position_embeddings.weight)
        x = self.word_embeddings(input_ids)  # (B, T, C) or (N, C)
        x = x + self.token_type_embeddings(token_type_ids)
        x = x + table  # (T, C) broadcast over the batch, or (N, C)
        return self.dropout(self.LayerNorm(x))


# --- one encoder layer -----------------------------------------------------------------------


class BertSelfOutput(nn.Module):
    """W^O, dropout, residual, LayerNorm: the sublayer's post-LN wrapper."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(context)))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = MultiHeadSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, mask=None, output_attentions=False, unpadded=None):
        context, probs = self.self(x, mask, output_attentions, unpadded)
        return self.output(context, x), probs


class BertIntermediate(nn.Module):
    """The feed-forward network's first half: C -> 4C, then GELU."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertOutput(nn.Module):
    """The feed-forward network's second half: 4C -> C, dropout, residual, LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(h)))


class BertLayer(nn.Module):
    """Post-LN Transformer encoder layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, mask=None, output_attentions=False, unpadded=None):
        x, probs = self.attention(x, mask, output_attentions, unpadded)
        x = self.output(self.intermediate(x), x)  # per token: (B, T, C), or (N, C) unpadded
        return x, probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x, mask=None, output_attentions=False, output_hidden_states=False, unpadded=None):
        restore = unpadded.pad if unpadded is not None else (lambda h: h)  # hidden states are returned (B, T, C)
        all_hidden = [restore(x)] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        for layer in self.layer:
            x, probs = layer(x, mask, output_attentions, unpadded)
            if output_hidden_states:
                all_hidden.append(restore(x))
            if output_attentions:
                all_probs.append(probs)
        return x, all_hidden, all_probs


class BertPooler(nn.Module):
    """dense + tanh on the [CLS] vector: the sentence-level representation used by NSP."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, C)


# --- shared plumbing: initialisation, loading, saving -----------------------------------------


class BertPreTrainedModel(nn.Module):
    """Initialisation as in BERT, plus `from_pretrained` / `save_pretrained`."""

    # Prefix of the encoder's parameters in this model's state dict ("" for BertModel itself).
    base_prefix = "bert."

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config

    @torch.no_grad()
    def _init_module(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, BertLMPredictionHead):
            module.bias.zero_()

    def init_weights(self) -> None:
        """Normal(0, 0.02) weights, zero biases, LayerNorm 1 and 0; then re-tie shared weights."""
        self.apply(self._init_module)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Models with an MLM head share its output matrix with the word embeddings."""

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_overrides: Any):
        """Load a Hugging Face-format BERT folder, a registered name ("minilm-l6") or a Hub name."""
        from .checkpoint import load_pretrained

        return load_pretrained(cls, name_or_path, **config_overrides)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json and model.safetensors that transformers loads as the same model."""
        from .checkpoint import save_pretrained

        return save_pretrained(self, path)

    def num_parameters(self) -> int:
        """Distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


class BertModel(BertPreTrainedModel):
    """The encoder: embeddings, N layers, and (optionally) the pooler."""

    base_prefix = ""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        # Fast path for padded batches: per-token work on the real tokens only (see Unpadded).
        # The outputs at real tokens are the same either way; padding positions come out as zeros.
        self.unpad = True
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        unpadded = None
        if self.unpad and attention_mask is not None and not bool(attention_mask.all()):
            unpadded = Unpadded.from_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids, unpadded)  # (B, T, C), or (N, C) unpadded
        mask = None
        if attention_mask is not None:
            mask = additive_padding_mask(attention_mask, x.dtype)  # (B, 1, 1, T)
        x, hidden, probs = self.encoder(x, mask, output_attentions, output_hidden_states, unpadded)
        if unpadded is not None:
            x = unpadded.pad(x)  # (B, T, C)
        return ModelOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(probs) if probs is not None else None,
        )


# --- heads -----------------------------------------------------------------------------------


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """MLM head: dense + GELU + LayerNorm, then the word-embedding matrix (tied) plus a bias."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(x), self.decoder.weight, self.bias)  # (..., V)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)  # NSP: IsNext / NotNext


class _LinearCrossEntropy(torch.autograd.Function):
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
_FUSED_BLOCK_ELEMENTS = 1 << 22


def masked_lm_loss(
    head: BertLMPredictionHead, sequence_output: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Cross-entropy of the MLM head at the positions whose label is not -100.

    The positions are gathered *before* the vocabulary projection, so the (tokens x vocab)
    matrix multiply runs on the ~15% masked tokens only: with a 30k vocabulary that projection
    at every position costs more than the rest of a small model. Mean over masked tokens, which
    is the same number as the full cross-entropy with ignore_index=-100.

    When gradients are being recorded (training) and no autocast is active, the projection and the
    loss are fused (`_LinearCrossEntropy`) and the (N, V) logits are not kept: the logits returned
    are then None. Returns (loss, logits at masked positions (N, V) or None, masked positions (B, T)
    bool, argmax predictions at the masked positions (N,)).
    """
    selected = labels != -100  # (B, T)
    hidden = sequence_output[selected]  # (N, H)
    targets = labels[selected]  # (N,)
    fused = (
        torch.is_grad_enabled()
        and targets.numel() > 0
        and not torch.is_autocast_enabled(hidden.device.type)
        and (hidden.requires_grad or head.decoder.weight.requires_grad)
    )
    if fused:
        transformed = head.transform(hidden)  # (N, H)
        block_rows = max(1, _FUSED_BLOCK_ELEMENTS // head.decoder.weight.shape[0])
        loss, predictions = _LinearCrossEntropy.apply(
            transformed, head.decoder.weight, head.bias, targets, block_rows
        )
        return loss, None, selected, predictions
    logits = head(hidden)  # (N, V)
    predictions = logits.argmax(-1)
    if targets.numel() == 0:  # nothing masked: a zero that still joins the graph
        return logits.sum() * 0.0, logits, selected, predictions
    return F.cross_entropy(logits.float(), targets), logits, selected, predictions


class BertForPreTraining(BertPreTrainedModel):
    """BERT with the two pretraining heads: masked LM and next-sentence prediction."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        """Without `labels`, `prediction_logits` is (B, T, V). With `labels` (-100 = not masked), only
        the masked positions go through the vocabulary projection: `prediction_logits` is then (N, V),
        one row per True entry of `masked_positions` in row-major order, or None while training
        (see `masked_lm_loss`); `mlm_predictions` (N,) always holds the argmax at those rows."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        seq_logits = self.cls.seq_relationship(out.pooler_output)  # (B, 2)
        mlm_loss = nsp_loss = positions = predictions = None
        if labels is not None:
            mlm_loss, pred_logits, positions, predictions = masked_lm_loss(
                self.cls.predictions, out.last_hidden_state, labels
            )
        else:
            pred_logits = self.cls.predictions(out.last_hidden_state)  # (B, T, V)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(seq_logits.float(), next_sentence_label.view(-1))
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        return ModelOutput(
            loss=sum(losses) if losses else None,
            mlm_loss=mlm_loss,
            nsp_loss=nsp_loss,
            prediction_logits=pred_logits,
            seq_relationship_logits=seq_logits,
            masked_positions=positions,
            mlm_predictions=predictions,
            last_hidden_state=out.last_hidden_state,
            pooler_output=out.pooler_output,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the MLM head only (no pooler, as in the reference)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        """`logits` is (B, T, V) without `labels`; with them, (N, V) at the masked positions only."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        loss = positions = predictions = None
        if labels is not None:
            loss, logits, positions, predictions = masked_lm_loss(self.cls.predictions, out.last_hidden_state, labels)
        else:
            logits = self.cls.predictions(out.last_hidden_state)
        return ModelOutput(
            loss=loss,
            mlm_loss=loss,
            logits=logits,
            masked_positions=positions,
            mlm_predictions=predictions,
            last_hidden_state=out.last_hidden_state,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT with dropout + a linear layer on the pooled [CLS] vector."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(out.pooler_output))  # (B, num_labels)
        loss = None
        if labels is not None:
            if self.num_labels == 1 or self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            elif self.config.problem_type == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        return ModelOutput(
            loss=loss,
            logits=logits,
            last_hidden_state=out.last_hidden_state,
            pooler_output=out.pooler_output,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
