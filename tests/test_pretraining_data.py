"""NSP pairs and MLM masks as BERT made them, measured on a slice of the real news corpus."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from bertlab import train_wordpiece
from bertlab.data import (
    Instance,
    MLMCollator,
    PretrainingDataset,
    build_pretraining_dataset,
    create_instances,
    load_corpus,
    mask_tokens,
    tokenize_documents,
    truncate_seq_pair,
)

MAX_LEN = 128


@pytest.fixture(scope="module")
def docs():
    return [d for d in load_corpus("news")[:400] if d]


@pytest.fixture(scope="module")
def tok(docs):
    return train_wordpiece(docs, vocab_size=4000)


@pytest.fixture(scope="module")
def dataset(docs, tok):
    return build_pretraining_dataset(docs, tok, max_seq_length=MAX_LEN, seed=0)


def collate_all(dataset, collator, batch_size=64):
    """Every example once, in order, through the collator: a list of batches."""
    return [collator([dataset[i] for i in range(s, min(s + batch_size, len(dataset)))])
            for s in range(0, len(dataset), batch_size)]


def synthetic_docs(n_docs=30, seed=0):
    """Token id = doc * 10_000 + sentence * 100 + position: every token tells where it came from."""
    rng = random.Random(seed)
    return [[[d * 10_000 + s * 100 + k for k in range(rng.randint(3, 30))]
             for s in range(rng.randint(1, 12))] for d in range(1, n_docs + 1)]


# --- instances -----------------------------------------------------------------------------------


def test_enough_text_for_the_statistics(dataset):
    stats = dataset.stats()
    assert stats["tokens"] >= 100_000, stats
    assert 0.48 <= stats["is_next_share"] <= 0.52, stats  # NSP positives 50 +- 2 %


def test_examples_have_bert_layout(dataset, tok):
    for i in range(len(dataset)):
        ex = dataset[i]
        ids, types = ex["input_ids"].tolist(), ex["token_type_ids"].tolist()
        inst = dataset.instances[i]
        a, b = inst.tokens_a, inst.tokens_b
        assert len(ids) <= MAX_LEN and len(a) >= 1 and len(b) >= 1
        assert ids == [tok.cls_token_id, *a, tok.sep_token_id, *b, tok.sep_token_id]
        assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert ex["next_sentence_label"] == int(inst.is_random_next) and ex["index"] == i
    assert dataset[-1]["index"] == len(dataset) - 1
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_pairs_follow_the_recipe():
    docs = synthetic_docs()
    instances = create_instances(docs, max_seq_length=64, short_seq_prob=0.1, seed=3)
    assert instances == create_instances(docs, max_seq_length=64, short_seq_prob=0.1, seed=3)
    assert instances != create_instances(docs, max_seq_length=64, short_seq_prob=0.1, seed=4)
    for inst in instances:
        assert len(inst.tokens_a) + len(inst.tokens_b) <= 64 - 3
        doc_a = {t // 10_000 for t in inst.tokens_a}
        doc_b = {t // 10_000 for t in inst.tokens_b}
        assert len(doc_a) == 1  # A is always from one document
        if inst.is_random_next:
            assert not doc_a & doc_b  # B from ANOTHER document
        else:
            assert doc_b == doc_a  # B from the same document, after A
            assert inst.tokens_b[0] > inst.tokens_a[-1]
            assert inst.tokens_b[0] // 100 > inst.tokens_a[-1] // 100  # in a later sentence


def test_nsp_balance_and_the_reference_lean(docs, tok):
    tokenized = tokenize_documents(docs, tok)
    balanced = create_instances(tokenized, max_seq_length=MAX_LEN, seed=1)
    reference = create_instances(tokenized, max_seq_length=MAX_LEN, seed=1, balanced_nsp=False)
    share = lambda xs: sum(not x.is_random_next for x in xs) / len(xs)  # noqa: E731
    assert abs(share(balanced) - 0.5) <= 0.02
    assert share(reference) < 0.47  # single-sentence chunks are always NotNext in the reference
    none_random = create_instances(tokenized, max_seq_length=MAX_LEN, nsp_prob=0.0, seed=1)
    assert not any(x.is_random_next for x in none_random)


def test_short_seq_prob_and_dupe_factor():
    docs = synthetic_docs(n_docs=40)
    long_ = create_instances(docs, max_seq_length=128, short_seq_prob=0.0, seed=0)
    short = create_instances(docs, max_seq_length=128, short_seq_prob=1.0, seed=0)
    mean = lambda xs: sum(len(x.tokens_a) + len(x.tokens_b) for x in xs) / len(xs)  # noqa: E731
    assert mean(short) < 0.8 * mean(long_) and len(short) > len(long_)
    twice = create_instances(docs, max_seq_length=128, dupe_factor=2, seed=0)
    assert 1.6 * len(long_) < len(twice) < 2.4 * len(long_)


def test_truncate_seq_pair_trims_the_longer_side_from_both_ends():
    rng = random.Random(0)
    fronts = backs = 0
    for _ in range(50):
        a, b = list(range(100, 130)), list(range(10))
        truncate_seq_pair(a, b, 25, rng)
        assert len(a) + len(b) == 25 and b == list(range(10))  # only the longer side shrinks
        fronts += a[0] != 100
        backs += a[-1] != 129
    assert fronts > 10 and backs > 10
    a, b = [1] * 9, [2] * 9
    truncate_seq_pair(a, b, 10, rng)
    assert (len(a), len(b)) == (5, 5)


def test_create_instances_errors():
    with pytest.raises(ValueError, match="two non-empty documents"):
        create_instances([[[5, 6]], [[]], []])
    with pytest.raises(ValueError, match="max_seq_length"):
        create_instances(synthetic_docs(), max_seq_length=4)


# --- masks ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masked_epoch0(dataset, tok):
    return collate_all(dataset, MLMCollator(tok, seed=0))


def test_masking_statistics(masked_epoch0, dataset, tok):
    specials = torch.tensor(tok.special_ids)
    chosen_total = candidates_total = n_mask = n_random = n_keep = 0
    start = 0
    for batch in masked_epoch0:
        B, T = batch["input_ids"].shape
        original = torch.full((B, T), tok.pad_token_id)
        for r in range(B):
            ids = dataset[start + r]["input_ids"]
            original[r, : len(ids)] = ids
        start += B
        labels, inputs = batch["labels"], batch["input_ids"]
        chosen = labels != -100
        candidate = ~torch.isin(original, specials)
        assert not (chosen & ~candidate).any()  # no special token (nor padding) is ever chosen
        assert torch.equal(labels[chosen], original[chosen])  # labels are the original ids
        assert torch.equal(inputs[~chosen], original[~chosen])  # nothing else changes
        # An exact count per sequence: max(1, round(0.15 * candidates)).
        expected = torch.tensor([max(1, round(0.15 * int(n))) for n in candidate.sum(1)])
        assert torch.equal(chosen.sum(1), expected)
        chosen_total += int(chosen.sum())
        candidates_total += int(candidate.sum())
        n_mask += int((inputs[chosen] == tok.mask_token_id).sum())
        n_keep += int((inputs[chosen] == original[chosen]).sum())
        # "Random" = neither [MASK] nor the original (a random draw can hit the original, p = 1/V).
        random_ = (inputs[chosen] != tok.mask_token_id) & (inputs[chosen] != original[chosen])
        n_random += int(random_.sum())
        assert not torch.isin(inputs[chosen][random_], specials).any()
    assert candidates_total >= 100_000
    fraction = chosen_total / candidates_total
    assert abs(fraction - 0.15) <= 0.005, fraction
    assert abs(n_mask / chosen_total - 0.80) <= 0.015, n_mask / chosen_total
    assert abs(n_random / chosen_total - 0.10) <= 0.015, n_random / chosen_total
    assert abs(n_keep / chosen_total - 0.10) <= 0.015, n_keep / chosen_total
    assert n_mask + n_random + n_keep == chosen_total


def test_batch_layout(dataset, tok):
    collator = MLMCollator(tok, pad_to_multiple_of=8)
    examples = [dataset[i] for i in (0, 1, 2, 3)]
    batch = collator(examples)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}
    assert all(v.dtype == torch.long for v in batch.values())
    lengths = [len(ex["input_ids"]) for ex in examples]
    T = batch["input_ids"].shape[1]
    assert T % 8 == 0 and max(lengths) <= T < max(lengths) + 8
    for r, L in enumerate(lengths):
        assert batch["attention_mask"][r].tolist() == [1] * L + [0] * (T - L)
        assert (batch["input_ids"][r, L:] == tok.pad_token_id).all()
        assert (batch["token_type_ids"][r, L:] == 0).all() and (batch["labels"][r, L:] == -100).all()
        assert torch.equal(batch["token_type_ids"][r, :L], examples[r]["token_type_ids"])
    assert batch["next_sentence_label"].tolist() == [ex["next_sentence_label"] for ex in examples]
    loader = DataLoader(dataset, batch_size=16, collate_fn=collator)
    assert next(iter(loader))["input_ids"].shape[0] == 16


def _rows(batch, examples):
    """Unpadded (input_ids, labels) per example."""
    rows = []
    for r, ex in enumerate(examples):
        L = len(ex["input_ids"])
        rows.append((batch["input_ids"][r, :L].tolist(), batch["labels"][r, :L].tolist()))
    return rows


def test_masks_depend_on_seed_epoch_and_index_only(dataset, tok):
    collator = MLMCollator(tok, seed=7)
    examples = [dataset[i] for i in range(12)]
    first = _rows(collator(examples), examples)
    assert _rows(MLMCollator(tok, seed=7)(examples), examples) == first  # a fresh collator agrees
    shuffled = [examples[i] for i in (5, 0, 11, 3)]  # other batch, other order, other padding
    by_index = dict(zip(range(12), first))
    assert _rows(collator(shuffled), shuffled) == [by_index[ex["index"]] for ex in shuffled]
    collator.set_epoch(1)
    second = _rows(collator(examples), examples)
    assert all(a[1] != b[1] for a, b in zip(first, second))  # new masks every epoch
    collator.set_epoch(0)
    assert _rows(collator(examples), examples) == first
    assert _rows(MLMCollator(tok, seed=8)(examples), examples) != first


@pytest.mark.slow  # a fresh interpreter
def test_masks_are_the_same_in_another_process(dataset, tok, tmp_path):
    examples = [dataset[i] for i in range(8)]
    batch = MLMCollator(tok, seed=3)(examples)
    torch.save({"examples": examples, "special_ids": tok.special_ids, "vocab_size": tok.vocab_size,
                "mask": tok.mask_token_id}, tmp_path / "in.pt")
    script = (
        "import sys, torch; from bertlab.data import MLMCollator\n"
        "d = torch.load(sys.argv[1])\n"
        "c = MLMCollator(vocab_size=d['vocab_size'], pad_token_id=0, mask_token_id=d['mask'],"
        " special_ids=d['special_ids'], seed=3)\n"
        "b = c(d['examples']); print(b['input_ids'].tolist(), b['labels'].tolist())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "in.pt")], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{batch['input_ids'].tolist()} {batch['labels'].tolist()}"


def test_whole_word_masking_takes_whole_words(dataset, tok):
    continuation = tok.continuation_mask
    collator = MLMCollator(tok, whole_word_mask=True, seed=0)
    specials = torch.tensor(tok.special_ids)
    chosen_total = candidates_total = multi_piece_words = 0
    for start in range(0, min(len(dataset), 1200), 64):
        examples = [dataset[i] for i in range(start, min(start + 64, len(dataset)))]
        batch = collator(examples)
        for r, ex in enumerate(examples):
            ids = ex["input_ids"]
            chosen = batch["labels"][r, : len(ids)] != -100
            candidate = ~torch.isin(ids, specials)
            # Word number of each position: a new word starts at every non-## piece or after a special.
            starts = ~continuation[ids] | ~torch.cat([torch.tensor([False]), candidate[:-1]])
            word = torch.cumsum(starts, 0)
            for w in torch.unique(word[chosen]):
                in_word = (word == w) & candidate
                assert chosen[in_word].all(), "part of a word was masked"
                multi_piece_words += int(in_word.sum() > 1)
            assert int(chosen.sum()) <= max(1, round(0.15 * int(candidate.sum())))
            chosen_total += int(chosen.sum())
            candidates_total += int(candidate.sum())
    assert multi_piece_words > 100
    assert 0.14 <= chosen_total / candidates_total <= 0.155


def test_mask_tokens_directly():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17, 3, 0, 0]] * 50)
    special = torch.isin(ids, torch.tensor([0, 2, 3]))
    masked, labels = mask_tokens(ids, special, vocab_size=20, mask_token_id=4, masked_lm_prob=0.5,
                                 generator=g, special_ids=range(5))
    assert masked.shape == labels.shape == ids.shape
    assert (labels[special] == -100).all() and (masked[special] == ids[special]).all()
    assert ((labels != -100).sum(1) == 4).all()  # round(0.5 * 8)
    assert not torch.isin(masked[~special], torch.tensor([0, 1, 2, 3])).any()  # no special drawn
    capped, labels = mask_tokens(ids[0], special[0], 20, 4, 0.5, generator=g, max_predictions=2)
    assert int((labels != -100).sum()) == 2
    nothing = mask_tokens(torch.tensor([2, 3]), torch.tensor([True, True]), 20, 4)
    assert (nothing[1] == -100).all()


def test_collator_needs_ids_without_a_tokenizer():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        MLMCollator(vocab_size=100)
    with pytest.raises(ValueError, match="whole_word_mask"):
        MLMCollator(vocab_size=100, pad_token_id=0, mask_token_id=4, special_ids=[0, 1, 2, 3, 4],
                    whole_word_mask=True)
    dataset = PretrainingDataset([Instance([7, 8], [9], False)], cls_id=2, sep_id=3)
    collator = MLMCollator(vocab_size=100, pad_token_id=0, mask_token_id=4, special_ids=[0, 1, 2, 3, 4])
    assert collator([dataset[0]])["next_sentence_label"].tolist() == [0]
    with pytest.raises(KeyError, match="index"):
        collator([{"input_ids": [2, 7, 3]}])
