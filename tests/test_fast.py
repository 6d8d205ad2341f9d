"""bertlab.fast gives the plain path's numbers: unpadding and the fused MLM loss, switched by config."""

import json

import pytest
import torch
from torch.testing import assert_close

import bertlab
import bertlab.fast as fast
from bertlab import BertConfig, BertForPreTraining

from .conftest import make_batch

TINY = BertConfig.from_preset("tiny", vocab_size=1000, num_labels=3)


def mlm_labels(batch, seed=3):
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(batch["input_ids"].shape, generator=g) < 0.3) & batch["attention_mask"].bool()
    chosen[:, 0] = False
    return torch.where(chosen, batch["input_ids"], torch.full_like(batch["input_ids"], -100))


def fast_and_plain(kind, **fields):
    """The same weights twice: once with the fast paths of `fields` on, once plain. Eval mode (no dropout)."""
    torch.manual_seed(0)
    plain = getattr(bertlab, kind)(TINY).eval()
    quick = getattr(bertlab, kind)(TINY.replace(**fields)).eval()
    quick.load_state_dict(plain.state_dict())
    return quick, plain


def loss_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fast_fields_default_off_and_survive_config_json(tmp_path):
    assert not TINY.unpad_inputs and not TINY.fused_mlm_loss
    model = BertForPreTraining(TINY.replace(unpad_inputs=True, fused_mlm_loss=True))
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["unpad_inputs"] is True and saved["fused_mlm_loss"] is True
    loaded = BertForPreTraining.from_pretrained(tmp_path / "m")
    assert loaded.config.unpad_inputs and loaded.config.fused_mlm_loss
    override = BertForPreTraining.from_pretrained(tmp_path / "m", unpad_inputs=False)
    assert not override.config.unpad_inputs


@pytest.mark.parametrize("kind", ["BertForSequenceClassification", "BertForPreTraining"])
def test_unpadded_equals_plain(kind):
    """Same outputs at every real token and the same gradients as the padded computation; zeros at padding."""
    quick, plain = fast_and_plain(kind, unpad_inputs=True)
    batch = make_batch(TINY.vocab_size)
    real = batch["attention_mask"].bool()
    assert not real.all()
    targets = ({"labels": mlm_labels(batch), "next_sentence_label": torch.tensor([0, 1, 1])}
               if kind == "BertForPreTraining" else {"labels": torch.tensor([0, 2, 1])})
    (a, grads_a), (b, grads_b) = loss_and_grads(quick, {**batch, **targets}), loss_and_grads(plain, {**batch, **targets})
    assert_close(a.loss, b.loss, atol=1e-6, rtol=0)
    for name, g in grads_a.items():
        assert_close(g, grads_b[name], atol=1e-6, rtol=0, msg=name)
    with torch.no_grad():
        body_a = quick.bert(**batch, output_hidden_states=True, output_attentions=True)
        body_b = plain.bert(**batch, output_hidden_states=True, output_attentions=True)
    assert body_a.last_hidden_state.shape == body_b.last_hidden_state.shape
    assert_close(body_a.last_hidden_state[real], body_b.last_hidden_state[real], atol=1e-6, rtol=0)
    assert body_a.last_hidden_state[~real].abs().max() == 0
    assert len(body_a.hidden_states) == len(body_b.hidden_states) == TINY.num_hidden_layers + 1
    for h_a, h_b in zip(body_a.hidden_states, body_b.hidden_states):
        assert_close(h_a[real], h_b[real], atol=1e-6, rtol=0)
    for p_a, p_b in zip(body_a.attentions, body_b.attentions):  # (B, H, T, T): rows of real queries
        assert_close(p_a.transpose(1, 2)[real], p_b.transpose(1, 2)[real], atol=1e-6, rtol=0)
    assert_close(body_a.pooler_output, body_b.pooler_output, atol=1e-6, rtol=0)


def test_unpadded_path_is_skipped_without_padding():
    quick, plain = fast_and_plain("BertModel", unpad_inputs=True)
    batch = make_batch(TINY.vocab_size)
    full = {k: v[:1] for k, v in batch.items()}  # row 0 has no padding
    with torch.no_grad():
        assert torch.equal(quick(**full).last_hidden_state, plain(**full).last_hidden_state)


def test_unpad_round_trip():
    mask = make_batch(50)["attention_mask"]
    u = fast.Unpadded.from_mask(mask)
    x = torch.randn(*mask.shape, 4)
    assert u.unpad(x).shape == (int(mask.sum()), 4)
    assert_close(u.pad(u.unpad(x))[mask.bool()], x[mask.bool()])
    assert (u.pad(u.unpad(x))[~mask.bool()] == 0).all()
    assert torch.equal(u.positions, torch.nonzero(mask)[:, 1])


@pytest.mark.parametrize("block_rows", [3, 1000])
def test_fused_mlm_loss_equals_plain(monkeypatch, block_rows):
    """The fused projection + cross-entropy (gradients made in the forward pass, a block of rows at a
    time) gives the plain path's loss, argmax and gradients."""
    monkeypatch.setattr(fast, "FUSED_BLOCK_ELEMENTS", block_rows * TINY.vocab_size)
    quick, plain = fast_and_plain("BertForPreTraining", fused_mlm_loss=True)
    ids = torch.randint(5, TINY.vocab_size, (3, 20))
    labels = torch.full_like(ids, -100)
    labels[:, 1::4] = ids[:, 1::4]
    batch = {"input_ids": ids, "labels": labels, "next_sentence_label": torch.tensor([0, 1, 1])}
    (a, grads_a), (b, grads_b) = loss_and_grads(quick, batch), loss_and_grads(plain, batch)
    assert a.prediction_logits is None and b.prediction_logits is None
    assert a.mlm_predictions.shape == (int((labels != -100).sum()),)
    assert_close(a.mlm_loss, b.mlm_loss, atol=1e-6, rtol=0)
    assert_close(a.loss, b.loss, atol=1e-6, rtol=0)
    assert torch.equal(a.mlm_predictions, b.mlm_predictions)
    assert torch.equal(a.masked_positions, b.masked_positions)
    for name, g in grads_a.items():
        assert_close(g, grads_b[name], atol=1e-6, rtol=1e-5, msg=name)
    with torch.no_grad():  # no gradients recorded: the plain path runs
        assert not fast.fusable(a.last_hidden_state, quick.cls.predictions, labels)
        assert_close(quick(**batch).loss, b.loss, atol=1e-6, rtol=0)


def test_both_fast_paths_with_a_masked_lm():
    quick, plain = fast_and_plain("BertForMaskedLM", unpad_inputs=True, fused_mlm_loss=True)
    batch = make_batch(TINY.vocab_size)
    batch["labels"] = mlm_labels(batch)
    (a, grads_a), (b, grads_b) = loss_and_grads(quick, batch), loss_and_grads(plain, batch)
    assert a.losses.keys() == b.losses.keys() == {"mlm_loss"}
    assert_close(a.loss, b.loss, atol=1e-6, rtol=0)
    for name, g in grads_a.items():
        assert_close(g, grads_b[name], atol=1e-6, rtol=1e-5, msg=name)


def test_fused_loss_exact_when_softmax_underflows():
    """Rows whose target probability underflows float32 (a logit gap of hundreds) still get the exact
    loss and gradients: the log-sum-exp of those rows comes from the logits, not from log(0)."""
    torch.manual_seed(0)
    hidden = (torch.randn(7, 16) * 40).requires_grad_()  # logits spread over hundreds
    weight = torch.randn(50, 16).requires_grad_()
    bias = torch.randn(50).requires_grad_()
    targets = torch.randint(0, 50, (7,))
    loss, pred = fast.LinearCrossEntropy.apply(hidden, weight, bias, targets, 3)
    ref_logits = torch.nn.functional.linear(hidden, weight, bias)
    ref = torch.nn.functional.cross_entropy(ref_logits, targets)
    assert ref.item() > 100 and torch.isfinite(loss)  # the case is real: some p[t] are exactly 0
    assert_close(loss, ref, rtol=1e-5, atol=1e-4)
    assert torch.equal(pred, ref_logits.argmax(-1))
    grads = torch.autograd.grad(loss, (hidden, weight, bias))
    ref_grads = torch.autograd.grad(ref, (hidden, weight, bias))
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_fast_imports_nothing_from_model():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(fast))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "model" not in imported and not any("model" in (m or "") for m in imported)
