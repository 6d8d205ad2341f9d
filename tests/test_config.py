import json

import pytest

from bertlab import PRESETS, BertConfig, BertModel, ConfigError


@pytest.mark.parametrize(
    "name, layers, hidden, heads",
    [("tiny", 2, 128, 2), ("mini", 4, 256, 4), ("small", 4, 512, 8), ("medium", 8, 512, 8),
     ("base", 12, 768, 12), ("large", 24, 1024, 16)],
)
def test_presets(name, layers, hidden, heads):
    c = BertConfig.from_preset(name)
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads) == (layers, hidden, heads)
    assert c.intermediate_size == 4 * hidden
    assert set(PRESETS) == {"tiny", "mini", "small", "medium", "base", "large"}


def test_base_has_bert_base_parameter_count():
    # bert-base-uncased: 109,482,240 parameters in BertModel (embeddings, 12 layers, pooler).
    assert BertModel(BertConfig.from_preset("base")).num_parameters() == 109_482_240


def test_parameter_count_formula_tiny():
    c = BertConfig.from_preset("tiny", vocab_size=1000)
    C, F, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers  # F: the feed-forward width
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * C + 2 * C
    layer = 4 * (C * C + C) + (C * F + F) + (F * C + C) + 2 * 2 * C
    pooler = C * C + C
    assert BertModel(c).num_parameters() == embeddings + L * layer + pooler


def test_overrides_and_errors():
    c = BertConfig.from_preset("tiny", vocab_size=99, num_labels=3)
    assert c.vocab_size == 99 and c.num_labels == 3
    with pytest.raises(ConfigError, match="unknown preset"):
        BertConfig.from_preset("huge")
    with pytest.raises(ConfigError, match="multiple"):
        BertConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ConfigError, match="attn_implementation"):
        BertConfig(attn_implementation="flash")
    with pytest.raises(ConfigError, match="unknown config field"):
        c.replace(colour="blue")


def test_config_json_roundtrip(tmp_path):
    c = BertConfig.from_preset("mini", id2label={0: "neg", 1: "neutral", 2: "pos"})
    assert c.num_labels == 3 and c.label2id == {"neg": 0, "neutral": 1, "pos": 2}
    d = c.to_dict()
    assert d["model_type"] == "bert" and d["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert BertConfig.from_json_file(tmp_path / "config.json") == c


def test_config_of_another_model_type(tmp_path):
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(ConfigError, match=r"config\.json: model_type is 'gpt2'"):
        BertConfig.from_json_file(f)
    f.write_text("{not json")
    with pytest.raises(ConfigError, match=r"config\.json: not valid JSON"):
        BertConfig.from_json_file(f)
