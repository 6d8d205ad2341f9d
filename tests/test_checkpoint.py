"""Hugging Face-format checkpoints: round trips with transformers, safe loading, clear errors."""

import json
import pickle

import pytest
import torch
import transformers
from torch.testing import assert_close

import bertlab
from bertlab import BertConfig, BertForSequenceClassification, BertModel, CheckpointError
from bertlab.checkpoint import resolve

from .conftest import at_real_tokens, make_batch
from .reference import PAIRS, twin

TINY = BertConfig.from_preset("tiny", vocab_size=500)
AUTO = {
    "BertModel": transformers.AutoModel,
    "BertForPreTraining": transformers.BertForPreTraining,
    "BertForMaskedLM": transformers.AutoModelForMaskedLM,
    "BertForSequenceClassification": transformers.AutoModelForSequenceClassification,
}
OUTPUT = {
    "BertModel": "last_hidden_state",
    "BertForPreTraining": "prediction_logits",
    "BertForMaskedLM": "logits",
    "BertForSequenceClassification": "logits",
}


@pytest.mark.parametrize("kind", list(PAIRS))
def test_bertlab_save_then_transformers_load(kind, tmp_path):
    config = TINY.replace(id2label={0: "neg", 1: "neu", 2: "pos"}) if "Sequence" in kind else TINY
    ours, _ = twin(kind, config)
    ours.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    ref, info = AUTO[kind].from_pretrained(tmp_path / "m", output_loading_info=True)
    assert info["missing_keys"] == set() or info["missing_keys"] == [], info
    assert info["unexpected_keys"] == set() or info["unexpected_keys"] == [], info
    assert type(ref).__name__ == kind
    batch = make_batch(config.vocab_size)
    with torch.no_grad():
        assert_close(at_real_tokens(getattr(ours(**batch), OUTPUT[kind]), batch),
                     at_real_tokens(getattr(ref.eval()(**batch), OUTPUT[kind]), batch), atol=1e-5, rtol=0)
    if "Sequence" in kind:
        assert ref.config.id2label == {0: "neg", 1: "neu", 2: "pos"}


@pytest.mark.parametrize("kind", list(PAIRS))
def test_transformers_save_then_bertlab_load(kind, tmp_path):
    _, ref = twin(kind, TINY)
    ref.save_pretrained(tmp_path / "m")
    ours = getattr(bertlab, kind).from_pretrained(tmp_path / "m")
    assert ours.loading_info["missing_keys"] == []
    assert ours.loading_info["unexpected_keys"] == []
    assert not ours.training
    batch = make_batch(TINY.vocab_size)
    with torch.no_grad():
        assert_close(at_real_tokens(getattr(ours(**batch), OUTPUT[kind]), batch),
                     at_real_tokens(getattr(ref(**batch), OUTPUT[kind]), batch), atol=1e-5, rtol=0)


def test_encoder_checkpoint_into_classifier_lists_fresh_head(tmp_path, caplog):
    BertModel(TINY).save_pretrained(tmp_path / "enc")
    with caplog.at_level("WARNING", logger="bertlab"):
        clf = BertForSequenceClassification.from_pretrained(tmp_path / "enc", num_labels=4)
    assert clf.config.num_labels == 4 and clf.classifier.out_features == 4
    assert clf.loading_info["missing_keys"] == ["classifier.bias", "classifier.weight"]
    assert "initialised fresh" in caplog.text and "classifier.weight" in caplog.text


def test_classifier_with_new_label_count_reinitialises_head(tmp_path):
    BertForSequenceClassification(TINY.replace(num_labels=2)).save_pretrained(tmp_path / "two")
    clf = BertForSequenceClassification.from_pretrained(tmp_path / "two", num_labels=5)
    assert clf.classifier.out_features == 5
    assert clf.loading_info["mismatched_keys"] == ["classifier.bias", "classifier.weight"]


def test_pytorch_model_bin_is_read_with_weights_only(tmp_path):
    _, ref = twin("BertModel", TINY)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY.to_dict()))
    torch.save(ref.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    ours = BertModel.from_pretrained(tmp_path / "m")
    assert_close(ours.embeddings.word_embeddings.weight, ref.embeddings.word_embeddings.weight)


class Boom:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY.to_dict()))
    with open(tmp_path / "m" / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Boom()}, f)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: cannot read weights"):
        BertModel.from_pretrained(tmp_path / "m")
    assert "must never run" not in capsys.readouterr().out


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        BertModel.from_pretrained(tmp_path)


def test_config_of_another_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(CheckpointError, match=r"config\.json: model_type is 'roberta'"):
        BertModel.from_pretrained(tmp_path)


def test_weights_of_the_wrong_shape(tmp_path):
    BertModel(TINY).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["vocab_size"] = 600
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: embeddings\.word_embeddings\.weight has shape \(500, 128\)"):
        BertModel.from_pretrained(tmp_path)


def test_folder_without_weights_and_corrupt_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read weights"):
        BertModel.from_pretrained(tmp_path)


def test_missing_folder_and_offline_hub_name():
    with pytest.raises(CheckpointError, match="no such folder"):
        BertModel.from_pretrained("./no/such/dir")
    with pytest.raises(CheckpointError, match="offline") as err:
        BertModel.from_pretrained("someone/bert-that-is-not-cached")
    assert "\n" not in str(err.value)


def test_registered_minilm_resolves_to_installed_files():
    folder = resolve("minilm-l6")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    model = BertModel.from_pretrained("minilm-l6")
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size) == (6, 384, 30522)


def test_save_leaves_no_staging_folder(tmp_path):
    BertModel(TINY).save_pretrained(tmp_path / "out")
    BertModel(TINY).save_pretrained(tmp_path / "out")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_checkpoint_files_know_no_model_classes():
    """checkpoint.py reads and writes files and names; building a model from them lives in model.py."""
    import ast
    import inspect

    import bertlab.checkpoint

    tree = ast.parse(inspect.getsource(bertlab.checkpoint))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and "model" in m.split(".") for m in imported), imported
