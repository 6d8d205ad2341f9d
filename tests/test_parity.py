"""bertlab's BERT gives the reference implementation's numbers on the same weights."""

import pytest
import torch
from torch.testing import assert_close

from bertlab import BertConfig, BertForPreTraining, BertModel, WordPieceTokenizer

from .conftest import at_real_tokens, make_batch
from .reference import twin

ATOL = 1e-5
RANDOM_CONFIGS = {
    "tiny": BertConfig.from_preset("tiny", vocab_size=1000),
    # base-sized: 12 layers, hidden 768, 12 heads, the full 30,522-piece vocabulary
    "base": BertConfig.from_preset("base"),
}


def close(actual, expected, what, atol=ATOL):
    """Each check asserts its own bound; a failure names the check and its largest difference."""
    assert_close(actual, expected, atol=atol, rtol=0, msg=lambda report: f"{what}: {report}")


# base-sized twins take seconds each: the fast tier (pytest -m "not slow") checks the tiny one only
@pytest.fixture(scope="module", params=["tiny", pytest.param("base", marks=pytest.mark.slow)])
def preset(request):
    return request.param


@pytest.mark.parametrize("attn", ["explicit", "sdpa"])
def test_encoder_and_pooler(preset, attn):
    config = RANDOM_CONFIGS[preset].replace(attn_implementation=attn)
    ours, ref = twin("BertModel", config)
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        a, b = ours(**batch), ref(**batch)
    real = lambda x: at_real_tokens(x, batch)  # noqa: E731
    close(real(a.last_hidden_state), real(b.last_hidden_state), f"{preset} last_hidden_state")
    close(a.pooler_output, b.pooler_output, f"{preset} pooler_output")


def test_sequence_classification_logits(preset):
    config = RANDOM_CONFIGS[preset].replace(num_labels=3)
    ours, ref = twin("BertForSequenceClassification", config)
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        close(ours(**batch).logits, ref(**batch).logits, f"{preset} classifier logits")


def test_pretraining_logits(preset):
    config = RANDOM_CONFIGS[preset]
    ours, ref = twin("BertForPreTraining", config)
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        a, b = ours(**batch), ref(**batch)
    close(at_real_tokens(a.prediction_logits, batch), at_real_tokens(b.prediction_logits, batch), f"{preset} MLM logits")
    close(a.seq_relationship_logits, b.seq_relationship_logits, f"{preset} NSP logits")


def test_masked_lm_logits():
    config = RANDOM_CONFIGS["tiny"]
    ours, ref = twin("BertForMaskedLM", config)
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        close(at_real_tokens(ours(**batch).logits, batch), at_real_tokens(ref(**batch).logits, batch),
              "tiny MaskedLM logits")


def mlm_labels(batch, seed=3):
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(batch["input_ids"].shape, generator=g) < 0.3) & batch["attention_mask"].bool()
    chosen[:, 0] = False
    return torch.where(chosen, batch["input_ids"], torch.full_like(batch["input_ids"], -100))


def test_pretraining_losses_match_reference():
    """The sparse MLM head (masked positions gathered before the projection) gives the same losses."""
    config = RANDOM_CONFIGS["tiny"]
    ours, ref = twin("BertForPreTraining", config)
    batch = make_batch(config.vocab_size)
    labels, nsp = mlm_labels(batch), torch.tensor([0, 1, 1])
    with torch.no_grad():
        a = ours(**batch, labels=labels, next_sentence_label=nsp)
        b = ref(**batch, labels=labels, next_sentence_label=nsp)
        ref_mlm = torch.nn.functional.cross_entropy(
            b.prediction_logits.view(-1, config.vocab_size), labels.view(-1))
        ref_nsp = torch.nn.functional.cross_entropy(b.seq_relationship_logits, nsp)
    close(a.mlm_loss, ref_mlm, "MLM loss")
    close(a.nsp_loss, ref_nsp, "NSP loss")
    close(a.loss, b.loss, "pretraining loss")
    # The head at the gathered masked positions gives the reference's logits there.
    assert a.prediction_logits is None and torch.equal(a.masked_positions, labels != -100)
    gathered = ours.cls.predictions(a.last_hidden_state[a.masked_positions])  # (N, V)
    close(gathered, b.prediction_logits[labels != -100], "gathered MLM logits")
    assert torch.equal(a.mlm_predictions, gathered.argmax(-1))


@pytest.mark.parametrize("kind", ["BertForSequenceClassification", "BertForPreTraining"])
def test_gradients_match_reference(kind):
    config = RANDOM_CONFIGS["tiny"]
    ours, ref = twin(kind, config)
    batch = make_batch(config.vocab_size)
    if kind == "BertForPreTraining":
        targets = dict(labels=mlm_labels(batch), next_sentence_label=torch.tensor([0, 1, 0]))
    else:
        targets = dict(labels=torch.tensor([0, 1, 1]))
    ours(**batch, **targets).loss.backward()
    ref(**batch, **targets).loss.backward()
    ref_grads = dict(ref.named_parameters())
    compared = 0
    for name, p in ours.named_parameters():
        g_ref = ref_grads[name].grad
        close(p.grad, g_ref, "gradients", atol=1e-4)
        compared += 1
    assert compared == len(list(ours.parameters())) > 30


def test_explicit_and_sdpa_paths_agree():
    config = RANDOM_CONFIGS["tiny"]
    explicit, _ = twin("BertModel", config.replace(attn_implementation="explicit"))
    sdpa, _ = twin("BertModel", config.replace(attn_implementation="sdpa"))
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        close(explicit(**batch).last_hidden_state, sdpa(**batch).last_hidden_state, "explicit vs sdpa")


def test_attention_probabilities():
    config = RANDOM_CONFIGS["tiny"]
    ours, ref = twin("BertModel", config)
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        a = ours(**batch, output_attentions=True).attentions
        b = ref(**batch, output_attentions=True).attentions
    assert len(a) == config.num_hidden_layers
    assert a[0].shape == (3, config.num_attention_heads, 12, 12)
    for x, y in zip(a, b):
        close(x, y, "attention probabilities")
        assert_close(x.sum(-1), torch.ones_like(x.sum(-1)))
        padded = batch["attention_mask"] == 0  # (B, T): no probability mass on padded keys
        assert (x * padded[:, None, None, :]).sum() == 0


def test_padding_does_not_change_real_tokens():
    config = RANDOM_CONFIGS["tiny"]
    ours, _ = twin("BertModel", config)
    batch = make_batch(config.vocab_size)
    row = 2
    real = int(batch["attention_mask"][row].sum())
    alone = {k: v[row : row + 1, :real] for k, v in batch.items()}
    with torch.no_grad():
        padded_out = ours(**batch).last_hidden_state[row, :real]
        alone_out = ours(**alone).last_hidden_state[0]
    close(padded_out, alone_out, "padded vs unpadded")


# --- the real pretrained weights -------------------------------------------------------------

SENTENCES = [
    ("The cat sat on the mat.", "It was a sunny afternoon."),
    ("Attention is all you need?", "BERT reads the whole sentence at once, left and right."),
    ("Short one.", "Two."),
]


@pytest.fixture(scope="module")
def minilm_batch():
    tok = WordPieceTokenizer.from_pretrained("minilm-l6")
    return tok([a for a, _ in SENTENCES], [b for _, b in SENTENCES])


@pytest.mark.parametrize("attn", ["explicit", "sdpa"])
def test_real_minilm_matches_reference(minilm_batch, attn):
    import transformers

    from bertlab.checkpoint import resolve

    ours = BertModel.from_pretrained("minilm-l6", attn_implementation=attn)
    assert ours.loading_info["missing_keys"] == [] and ours.loading_info["unexpected_keys"] == []
    ref_attn = "eager" if attn == "explicit" else "sdpa"
    ref = transformers.BertModel.from_pretrained(resolve("minilm-l6"), attn_implementation=ref_attn).eval()
    assert minilm_batch["attention_mask"].min() == 0 and minilm_batch["token_type_ids"].max() == 1
    with torch.no_grad():
        a, b = ours(**minilm_batch), ref(**minilm_batch)
    close(at_real_tokens(a.last_hidden_state, minilm_batch), at_real_tokens(b.last_hidden_state, minilm_batch),
          "MiniLM last_hidden_state")
    close(a.pooler_output, b.pooler_output, "MiniLM pooler_output")


def test_real_minilm_explicit_and_sdpa_agree(minilm_batch):
    """Across kernels the sums are ordered differently: compared on real tokens (padding rows carry
    no meaning and drift further, up to 2e-5 on values near 6)."""
    real = minilm_batch["attention_mask"].bool()
    with torch.no_grad():
        a = BertModel.from_pretrained("minilm-l6", attn_implementation="explicit")(**minilm_batch)
        b = BertModel.from_pretrained("minilm-l6", attn_implementation="sdpa")(**minilm_batch)
    close(a.last_hidden_state[real], b.last_hidden_state[real], "MiniLM explicit vs sdpa (real tokens)")
    close(a.pooler_output, b.pooler_output, "MiniLM explicit vs sdpa pooler")


def test_real_minilm_pretraining_heads_load_fresh(minilm_batch):
    """MiniLM ships no MLM/NSP heads: they are initialised fresh and listed."""
    model = BertForPreTraining.from_pretrained("minilm-l6")
    missing = model.loading_info["missing_keys"]
    assert missing and all(k.startswith("cls.") for k in missing)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
