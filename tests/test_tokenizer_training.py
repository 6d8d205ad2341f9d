"""Training a WordPiece vocabulary, saving it, and reading it back in transformers with the same ids."""

import json

import pytest
import torch
import transformers

from bertlab import WordPieceTokenizer, train_wordpiece
from bertlab.data import load_corpus
from bertlab.tokenizer import SPECIAL_TOKENS

CHINESE = ["中文也可以用来训练。", "我们今天去北京。", "这家酒店的服务很好！", "北京是中国的首都。"]
SAMPLES = [
    "Héllo, Wörld! It's 3.5% of the café's naïve résumé — «quoted».",
    "The Senate voted 51-50; Pence cast the tie-breaking vote.",
    "中文也可以，北京欢迎你！",
    "unaffable tokenization\tand\u0000control\u200bcharacters",
]
PAIRS = ["The second segment, a little longer than the first one.", "北京", "x", "Zürich?"]


@pytest.fixture(scope="module")
def news():
    return load_corpus("news")[:300]


@pytest.fixture(scope="module")
def tok(news):
    return train_wordpiece(news + [CHINESE] * 3, vocab_size=3000)


@pytest.fixture(scope="module")
def saved(tok, tmp_path_factory):
    return tok.save(tmp_path_factory.mktemp("wordpiece"))


def test_specials_come_first_and_vocab_is_full(tok):
    assert tok.convert_ids_to_tokens(range(5)) == list(SPECIAL_TOKENS)
    assert tok.special_ids == [0, 1, 2, 3, 4]
    ids = (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 4)
    assert tok.vocab_size == 3000
    assert any(t.startswith("##") for t in tok.get_vocab())


def test_bert_normalisation(tok):
    assert tok.tokenize("CAFÉ Naïve") == tok.tokenize("cafe naive")  # lower-cased, accents stripped
    assert tok.tokenize("北京欢迎你") == ["北", "京", "欢", "迎", "你"] or "[UNK]" in tok.tokenize("北京欢迎你")
    assert tok.tokenize("北京") == ["北", "京"]  # one CJK character per token
    assert tok.tokenize("a\u0000b\u200b") == tok.tokenize("ab")  # control / format characters removed
    assert tok.tokenize("vote,vote!") == ["vote", ",", "vote", "!"]  # punctuation split off
    pieces = tok.tokenize("unconfirmedness")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert tok.decode(tok.encode("the senate voted")["input_ids"]) == "the senate voted"


def test_cased_training_keeps_case_and_accents(news):
    cased = train_wordpiece(news[:60], vocab_size=600, lowercase=False)
    assert not cased.lowercase
    assert cased.tokenize("The") != cased.tokenize("the")
    assert "é" in "".join(cased.tokenize("café")) or "[UNK]" in cased.tokenize("café")


def test_training_accepts_strings_or_documents(news):
    docs = news[:40]
    a = train_wordpiece(docs, vocab_size=500)
    b = train_wordpiece((s for d in docs for s in d), vocab_size=500)
    assert a.get_vocab() == b.get_vocab()


def test_training_is_deterministic(news):
    # The Rust trainer alone numbers ## pieces in hash-map order (tokenizers issue #1794).
    vocabs = [train_wordpiece(news[:50], vocab_size=700).get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]


def test_training_errors_are_clear():
    with pytest.raises(ValueError, match="vocab_size 20 is too small"):
        train_wordpiece(["some text"], vocab_size=20)
    with pytest.raises(ValueError, match="no text"):
        train_wordpiece([], vocab_size=500)
    with pytest.raises(ValueError, match="no text"):
        train_wordpiece(["", "   ", []], vocab_size=500)
    with pytest.raises(TypeError):
        train_wordpiece([1, 2], vocab_size=500)
    with pytest.raises(ValueError, match="cannot hold the specials and an alphabet"):
        train_wordpiece(["".join(chr(0x100 + i) + " " for i in range(200))], vocab_size=150)


def test_save_writes_the_hugging_face_files(tok, saved):
    names = sorted(p.name for p in saved.iterdir())
    assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    vocab = (saved / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tok.convert_ids_to_tokens(range(tok.vocab_size))
    config = json.loads((saved / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer"
    assert config["do_lower_case"] is True and config["model_max_length"] == 512
    assert json.loads((saved / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"


def _same(ours: dict, theirs: dict):
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert ours[key].tolist() == theirs[key].tolist(), key


def test_saved_folder_loads_in_transformers_with_the_same_ids(tok, saved):
    vocab = (saved / "vocab.txt").read_text(encoding="utf-8").splitlines()
    from_vocab = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    auto = transformers.AutoTokenizer.from_pretrained(saved)
    for ref in (from_vocab, auto):
        assert ref.mask_token_id == 4 and ref.pad_token_id == 0 and ref.cls_token_id == 2
        _same(tok(SAMPLES), ref(SAMPLES, padding=True, return_tensors="pt"))
        _same(tok(SAMPLES, PAIRS), ref(SAMPLES, PAIRS, padding=True, return_tensors="pt"))
        _same(tok(SAMPLES, PAIRS, max_length=16),
              ref(SAMPLES, PAIRS, padding=True, truncation="longest_first", max_length=16, return_tensors="pt"))
        for text in SAMPLES:
            assert tok.tokenize(text) == ref.tokenize(text)


def test_cased_folder_loads_in_transformers(news, tmp_path):
    cased = train_wordpiece(news[:60] + [CHINESE] * 2, vocab_size=800, lowercase=False)
    cased.save(tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    fast = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False)
    for ref in (auto, fast):
        _same(cased(SAMPLES, PAIRS), ref(SAMPLES, PAIRS, padding=True, return_tensors="pt"))


def test_reload_and_resave(tok, saved, tmp_path):
    again = WordPieceTokenizer.from_pretrained(saved)
    _same(tok(SAMPLES, PAIRS), again(SAMPLES, PAIRS))
    again.save(tmp_path)  # overwriting goes through temporary files; none is left behind
    again.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in saved.iterdir())


def test_encode_and_batch_ids(tok):
    one = tok.encode(SAMPLES[0], PAIRS[0], max_length=12)
    batch = tok([SAMPLES[0]], [PAIRS[0]], max_length=12)
    assert one["input_ids"] == batch["input_ids"][0].tolist()
    assert one["token_type_ids"] == batch["token_type_ids"][0].tolist()
    assert len(one["input_ids"]) == 12 and one["input_ids"].count(tok.sep_token_id) == 2
    ids = tok.encode_batch_ids(SAMPLES)
    assert ids == [tok.encode(t)["input_ids"][1:-1] for t in SAMPLES]
    assert tok.encode_batch_ids([]) == []


def test_minilm_vocabulary_still_loads_and_is_not_truncated():
    minilm = WordPieceTokenizer.from_pretrained("minilm-l6")
    assert minilm.special_ids == [0, 100, 101, 102, 103]
    long_text = " ".join(["word"] * 300)
    assert len(minilm.encode_batch_ids([long_text])[0]) == 300  # its tokenizer.json pads/truncates to 128
    mask = minilm.continuation_mask
    assert mask.dtype == torch.bool and mask.shape == (30522,)
    assert int(mask.sum()) == sum(1 for t in minilm.get_vocab() if t.startswith("##") and len(t) > 2)
    assert mask[minilm.convert_tokens_to_ids(["##able"])[0]] and not mask[minilm.convert_tokens_to_ids(["able"])[0]]
