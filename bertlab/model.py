"""BERT, written from scratch (Devlin et al., 2019), with the reference implementation's names.

Read top to bottom: embeddings -> encoder layer (attention, feed-forward, post-LN residuals)
-> encoder stack -> pooler -> BertModel -> heads (MLM, NSP, classification) -> the task models.
Parameter names match Hugging Face's `modeling_bert.py`, so its checkpoints load unchanged.
This is the plain computation; the config fields `unpad_inputs` and `fused_mlm_loss` hand parts
of it to the faster paths of `bertlab.fast`, which give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint, fast
from .attention import MultiHeadSelfAttention, additive_padding_mask
from .config import BertConfig
from .positional import LearnedPositionEmbedding


@dataclass
class ModelOutput:
    """What every model returns; fields a model does not compute stay None.

    Each field has one shape. `prediction_logits` (and a masked LM's `logits`) are the MLM scores
    at every position, (B, T, V), computed only when no `labels` are given: with labels the head
    runs at the masked positions only, and the output holds the loss, `masked_positions` (B, T)
    bool, and `mlm_predictions` (N,), the argmax at those positions in row-major order.
    `losses` names the parts of `loss` ({"mlm_loss": ..., "nsp_loss": ...}) for a trainer to log.
    """

    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] | None = None
    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None  # (B, T, H)
    pooler_output: torch.Tensor | None = None  # (B, H)
    prediction_logits: torch.Tensor | None = None  # (B, T, V)
    seq_relationship_logits: torch.Tensor | None = None  # (B, 2)
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    masked_positions: torch.Tensor | None = None  # (B, T) bool
    mlm_predictions: torch.Tensor | None = None  # (N,)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # (L + 1) x (B, T, H)
    attentions: tuple[torch.Tensor, ...] | None = None  # L x (B, H, T, T)


def activation(name: str):
    # "gelu" is the exact GELU, x * Phi(x), as the reference implementation (transformers) reads the
    # name; Google's original TensorFlow BERT computed its tanh approximation, here "gelu_new".
    tanh = partial(F.gelu, approximate="tanh")
    return {"gelu": F.gelu, "gelu_new": tanh, "gelu_pytorch_tanh": tanh, "relu": F.relu}[name]


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

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, H)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids)  # (B, T, H)
        x = x + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(input_ids.shape[1])  # (T, H), broadcast over the batch
        return self.dropout(self.LayerNorm(x))


# --- one encoder layer -----------------------------------------------------------------------


class BertOutput(nn.Module):
    """A sublayer's post-LN wrapper: dense back to H, dropout, residual, LayerNorm.

    As the layer's `output`, the feed-forward network's second half (4H -> H); as
    `attention.output` (BertSelfOutput), the attention's output projection W^O (H -> H).
    """

    def __init__(self, config: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(h)))


class BertSelfOutput(BertOutput):
    def __init__(self, config: BertConfig):
        super().__init__(config, config.hidden_size)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = MultiHeadSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, mask=None, output_attentions=False):
        context, probs = self.self(x, mask, output_attentions)
        return self.output(context, x), probs


class BertIntermediate(nn.Module):
    """The feed-forward network's first half: H -> 4H, then GELU."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    """Post-LN Transformer encoder layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config, config.intermediate_size)

    def forward(self, x, mask=None, output_attentions=False):
        x, probs = self.attention(x, mask, output_attentions)
        x = self.output(self.intermediate(x), x)  # (B, T, H)
        return x, probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x, mask=None, output_attentions=False, output_hidden_states=False):
        all_hidden = [x] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        for layer in self.layer:
            x, probs = layer(x, mask, output_attentions)
            if output_hidden_states:
                all_hidden.append(x)
            if output_attentions:
                all_probs.append(probs)
        return x, all_hidden, all_probs


class BertPooler(nn.Module):
    """dense + tanh on the [CLS] vector: the sentence-level representation used by NSP."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H)


# --- shared plumbing: initialisation, loading, saving -----------------------------------------


class BertPreTrainedModel(nn.Module):
    """Initialisation as in BERT, plus `from_pretrained` / `save_pretrained`."""

    base_prefix = "bert."  # prefix of the encoder's parameters in the state dict ("" for BertModel)
    tied_weights_keys: tuple[str, ...] = ()  # state-dict names that are another weight, not saved

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
        """An MLM head shares its output matrix with the word embeddings (`tied_weights_keys`)."""
        if self.tied_weights_keys:
            self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_overrides: Any):
        """Load a Hugging Face-format BERT folder, a registered name ("minilm-l6") or a Hub name."""
        folder = checkpoint.resolve(name_or_path)
        model = cls(checkpoint.read_config(folder, **config_overrides))
        own = {k: v for k, v in model.state_dict().items() if k not in cls.tied_weights_keys}
        new_labels = {"num_labels", "id2label"} & set(config_overrides)  # an old classifier does not fit
        state, model.loading_info = checkpoint.fit_weights(folder, own, cls.base_prefix, cls.__name__,
                                                           reinit="classifier." if new_labels else None)
        with torch.no_grad():
            model.load_state_dict(state, strict=False)
        model.tie_weights()
        model.source = str(name_or_path)
        return model.eval()

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json and model.safetensors that transformers loads as the same model."""
        config = {**self.config.to_dict(), "architectures": [type(self).__name__], "tie_word_embeddings": True}
        tensors = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights_keys}
        return checkpoint.write_pretrained(path, config, tensors)

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
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions=False,
                output_hidden_states=False) -> ModelOutput:
        """input_ids, token_type_ids (B, T) long; attention_mask (B, T), 1 = token, 0 = padding."""
        if self.config.unpad_inputs and attention_mask is not None and not bool(attention_mask.all()):
            # the same numbers at every real token, zeros at padding (see bertlab.fast)
            x, hidden, probs = fast.unpadded_encoder(self, input_ids, attention_mask, token_type_ids,
                                                     output_attentions, output_hidden_states)
        else:
            x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
            mask = None if attention_mask is None else additive_padding_mask(attention_mask, x.dtype)  # (B, 1, 1, T)
            x, hidden, probs = self.encoder(x, mask, output_attentions, output_hidden_states)
        return ModelOutput(
            last_hidden_state=x, pooler_output=self.pooler(x) if self.pooler is not None else None,
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


def masked_lm_loss(
    head: BertLMPredictionHead, sequence_output: torch.Tensor, labels: torch.Tensor, fused: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of the MLM head at the positions whose label is not -100, averaged over them.

    The positions are gathered *before* the vocabulary projection, so the (tokens x vocab) matrix
    multiply runs on the ~15% masked tokens only; the loss is that of the full cross-entropy with
    ignore_index=-100. `fused` (config.fused_mlm_loss) hands training to `bertlab.fast`.
    Returns (loss, masked positions (B, T) bool, argmax predictions at those positions (N,)).
    """
    selected = labels != -100  # (B, T)
    hidden, targets = sequence_output[selected], labels[selected]  # (N, H), (N,)
    if fused and fast.fusable(hidden, head, targets):
        loss, predictions = fast.fused_mlm_loss(head, hidden, targets)
        return loss, selected, predictions
    logits = head(hidden)  # (N, V)
    if targets.numel() == 0:  # nothing masked: a zero that still joins the graph
        return logits.sum() * 0.0, selected, logits.argmax(-1)
    return F.cross_entropy(logits.float(), targets), selected, logits.argmax(-1)


class BertForPreTraining(BertPreTrainedModel):
    """BERT with the two pretraining heads: masked LM and next-sentence prediction."""

    tied_weights_keys = ("cls.predictions.decoder.weight",)

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, next_sentence_label=None,
                output_attentions=False, output_hidden_states=False) -> ModelOutput:
        """labels (B, T): the token to predict, -100 where none; next_sentence_label (B,): 0 IsNext, 1 NotNext."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        h = out.last_hidden_state  # (B, T, H)
        seq_logits = self.cls.seq_relationship(out.pooler_output)  # (B, 2)
        losses, pred_logits, positions, predictions = {}, None, None, None
        if labels is None:
            pred_logits = self.cls.predictions(h)  # (B, T, V)
        else:
            losses["mlm_loss"], positions, predictions = masked_lm_loss(
                self.cls.predictions, h, labels, self.config.fused_mlm_loss)
        if next_sentence_label is not None:
            losses["nsp_loss"] = F.cross_entropy(seq_logits.float(), next_sentence_label.view(-1))
        return ModelOutput(
            loss=sum(losses.values()) if losses else None, losses=losses or None,
            mlm_loss=losses.get("mlm_loss"), nsp_loss=losses.get("nsp_loss"),
            prediction_logits=pred_logits, seq_relationship_logits=seq_logits,
            masked_positions=positions, mlm_predictions=predictions,
            last_hidden_state=h, pooler_output=out.pooler_output,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the MLM head only (no pooler, as in the reference)."""

    tied_weights_keys = ("cls.predictions.decoder.weight",)

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False) -> ModelOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        h = out.last_hidden_state  # (B, T, H)
        loss = logits = positions = predictions = None
        if labels is None:
            logits = self.cls.predictions(h)  # (B, T, V)
        else:
            loss, positions, predictions = masked_lm_loss(self.cls.predictions, h, labels, self.config.fused_mlm_loss)
        return ModelOutput(
            loss=loss, losses={"mlm_loss": loss} if loss is not None else None, mlm_loss=loss, logits=logits,
            masked_positions=positions, mlm_predictions=predictions, last_hidden_state=h,
            hidden_states=out.hidden_states, attentions=out.attentions,
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

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False) -> ModelOutput:
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
            loss=loss, logits=logits, last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )
