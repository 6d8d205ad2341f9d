"""Helpers that build the reference (transformers) model and a bertlab model with the same weights."""

import torch
import transformers

import bertlab

PAIRS = {
    "BertModel": (bertlab.BertModel, transformers.BertModel),
    "BertForPreTraining": (bertlab.BertForPreTraining, transformers.BertForPreTraining),
    "BertForMaskedLM": (bertlab.BertForMaskedLM, transformers.BertForMaskedLM),
    "BertForSequenceClassification": (bertlab.BertForSequenceClassification, transformers.BertForSequenceClassification),
}


def hf_config(config: bertlab.BertConfig) -> transformers.BertConfig:
    d = config.to_dict()
    d.pop("bertlab_attn_implementation")
    return transformers.BertConfig(**d)


@torch.no_grad()
def twin(kind: str, config: bertlab.BertConfig, seed: int = 0):
    """(bertlab model, transformers model), same weights, eval mode, float32.

    Every reference tensor is perturbed first, so that LayerNorm weights (1 at init) and biases
    (0 at init) carry distinct values and a wrongly mapped tensor cannot go unnoticed.
    """
    ours_cls, ref_cls = PAIRS[kind]
    # Like for like: the explicit path against the reference's eager attention, SDPA against SDPA.
    attn = "eager" if config.attn_implementation == "explicit" else "sdpa"
    torch.manual_seed(seed)
    ref = ref_cls._from_config(hf_config(config), attn_implementation=attn)
    for p in ref.parameters():
        p.add_(0.02 * torch.randn_like(p))
    ours = ours_cls(config)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert unexpected == [] or set(unexpected) <= {"bert.embeddings.position_ids", "embeddings.position_ids",
                                                  "cls.predictions.decoder.bias"}, unexpected
    assert set(missing) <= {"cls.predictions.decoder.weight"}, missing
    ours.tie_weights()
    return ours.eval(), ref.eval()
