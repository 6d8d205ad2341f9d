"""--text-column / --text-pair-column / --label-column as 0-based numbers: a CSV or TSV file given
numbers is read without a header row (issue 20, "Columns by number"); through the loaders, and
through `bertlab predict`, `baseline` and `evaluate` in-process."""

import json
import os
from pathlib import Path

import pytest
import torch

from bertlab import BertConfig, BertForSequenceClassification, train_wordpiece
from bertlab.cli import main
from bertlab.data.classification import ClassificationDataError, load_classification, load_test_file, load_texts
from bertlab.data.tables import headerless_hint, is_column_number, read_table

POS = ["great", "wonderful", "moving", "smart"]
NEG = ["dull", "awful", "boring", "weak"]


def review_rows(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """(label, text): alternating pos / neg, each text with its own number."""
    rows = []
    for i in range(offset, offset + n):
        label = "pos" if i % 2 else "neg"
        word = (POS if i % 2 else NEG)[i % 4]
        rows.append((label, f"the film number {i} was {word} and long"))
    return rows


def write_headerless_tsv(path: Path, rows) -> Path:
    """label<TAB>text lines, no header: as many corpora ship."""
    path.write_text("".join(f"{y}\t{t}\n" for y, t in rows), encoding="utf-8")
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(ClassificationDataError) as err:
        call(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- the loaders ------------------------------------------------------------------------------------


def test_is_column_number():
    assert is_column_number("0") and is_column_number("12")
    assert not any(is_column_number(v) for v in (None, "", "text", "-1", "1.0", " 1", "١"))  # not ASCII digits: a name


def test_headerless_tsv_by_numbers(tmp_path):
    path = write_headerless_tsv(tmp_path / "reviews.tsv", review_rows(20))
    data = load_classification(str(path), label_column="0", text_column="1", validation_split=0.2)
    assert data.label_names == ["neg", "pos"]
    everything = {i: (t, data.label_names[y]) for split in data.splits.values()
                  for i, t, y in zip(split.ids, split.texts, split.labels)}
    assert len(everything) == 20  # the first line is data, not a header
    for line, (label, text) in enumerate(review_rows(20), 1):  # row ids: physical lines, data from line 1
        assert everything[f"reviews.tsv:{line}"] == (text, label)


def test_headerless_csv_by_numbers_counts_physical_lines(tmp_path):
    path = tmp_path / "d.csv"
    # text,label without a header; the quoted text on line 2 spans two lines, so the next record is on line 4
    path.write_text('a fine film,pos\n"a dull\nfilm",neg\nquite good,pos\n\nrather bad,neg\n', encoding="utf-8")
    test = load_test_file(str(path), text_column="0", label_column="1").splits["test"]
    assert test.ids == ["d.csv:1", "d.csv:2", "d.csv:4", "d.csv:6"]
    assert test.texts == ["a fine film", "a dull\nfilm", "quite good", "rather bad"]
    assert test.labels == [1, 0, 1, 0]  # neg = 0, pos = 1
    columns, rows = read_table(path, header=False)
    assert columns == ["0", "1"] and rows[0].where == "line 1"


def test_errors_name_the_physical_line_without_a_header(tmp_path):
    empty = tmp_path / "e.tsv"
    empty.write_text("pos\tfine\nneg\t  \npos\tgood\n", encoding="utf-8")
    message = error_of(load_classification, str(empty), label_column="0", text_column="1")
    assert f"{empty}: line 2: empty text in column '1'" in message
    ragged = tmp_path / "r.tsv"
    ragged.write_text("pos\tfine\nneg\tbad\textra\n", encoding="utf-8")
    message = error_of(load_classification, str(ragged), label_column="0", text_column="1")
    assert f"{ragged}: line 2: expected 2 TSV fields (as on line 1), found 3" in message
    unseen = tmp_path / "folder"
    unseen.mkdir()
    write_headerless_tsv(unseen / "train.tsv", review_rows(10))
    write_headerless_tsv(unseen / "test.tsv", [("pos", "good"), ("meh", "so so")])
    message = error_of(load_classification, str(unseen), label_column="0", text_column="1")
    assert "test.tsv: line 2: label 'meh' never occurs in the training data train.tsv" in message


def test_a_column_number_out_of_range_is_one_line_naming_file_and_line(tmp_path):
    path = write_headerless_tsv(tmp_path / "train.tsv", review_rows(6))
    message = error_of(load_classification, str(path), label_column="0", text_column="3")
    assert message.startswith(f"{path}: line 1: --text-column 3: the file has 2 columns")
    message = error_of(load_texts, path, text_column="1", text_pair_column="2")
    assert message.startswith(f"{path}: line 1: --text-pair-column 2: the file has 2 columns")
    blank_first = tmp_path / "blank.tsv"
    blank_first.write_text("\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    message = error_of(load_classification, str(blank_first), label_column="9", text_column="1")
    assert message.startswith(f"{blank_first}: line 2: --label-column 9: the file has 2 columns")


def test_mixing_a_number_and_a_name_is_one_error(tmp_path):
    path = write_headerless_tsv(tmp_path / "d.tsv", review_rows(6))
    message = error_of(load_classification, str(path), label_column="label", text_column="1")
    assert "--text-column 1 is a column number but --label-column 'label' a name" in message
    assert "every one as a 0-based number" in message


def test_numbers_need_every_column_as_a_number(tmp_path):
    path = write_headerless_tsv(tmp_path / "d.tsv", review_rows(6))
    message = error_of(load_classification, str(path), text_column="1")
    assert "without a header row" in message and "give --label-column as a number too (0 to 1)" in message
    message = error_of(load_classification, str(path), label_column="1", text_column="1")
    assert "column 1 cannot be both text and label" in message


def test_the_headerless_hint_suggests_numbers(tmp_path):
    sst = write_headerless_tsv(tmp_path / "sst.tsv", [("1", "a gorgeous , witty , seductive movie"), ("0", "dull")])
    message = error_of(load_classification, str(sst))
    assert "cannot tell which column holds the text; give --text-column" in message
    assert message.endswith("; the file seems to have no header row: give column numbers, e.g. "
                            "--label-column 0 --text-column 1")
    zh = tmp_path / "zh.tsv"  # text<TAB>label, as ChnSentiCorp: the first review read as a header
    zh.write_text("房间太小。其他的都一般。\tnegative\n服务很好\tpositive\n", encoding="utf-8")
    message = error_of(load_classification, str(zh), text_column="text", label_column="label")
    assert "no column 'text' (--text-column)" in message
    assert message.endswith("give column numbers, e.g. --text-column 0 --label-column 1")
    long_header = tmp_path / "long.csv"
    long_header.write_text("pos,this is a long sentence and not a column name at all\nneg,dull\n", encoding="utf-8")
    message = error_of(load_texts, long_header)  # predict: only the text column is asked for
    assert message.endswith("give column numbers, e.g. --text-column 1")
    assert headerless_hint(long_header, ["label", "text"], ["--text-column"]) == ""  # a real header: no hint
    assert headerless_hint(tmp_path / "d.jsonl", ["1", "2"], ["--text-column"]) == ""  # JSON names its columns


def test_a_header_file_still_works_by_names_and_by_detection(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("Body,Stars\n" + "".join(f"{t},{y}\n" for y, t in review_rows(10)), encoding="utf-8")
    data = load_test_file(str(path), text_column="Body", label_column="Stars")
    assert data.splits["test"].ids[0] == "h.csv:2" and len(data.splits["test"]) == 10  # header = line 1
    detected = tmp_path / "d.tsv"
    detected.write_text("label\ttext\n" + "".join(f"{y}\t{t}\n" for y, t in review_rows(10)), encoding="utf-8")
    assert load_test_file(str(detected)).splits["test"].texts[0] == review_rows(1)[0][1]
    message = error_of(load_test_file, str(detected), text_column="body")
    assert "no column 'body'" in message and "no header row" not in message


def test_json_lines_and_parquet_take_names_not_numbers(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for y, t in review_rows(6)), encoding="utf-8")
    message = error_of(load_classification, str(jsonl), text_column="0", label_column="1")
    assert message == (f"{jsonl}: --text-column 0: a column number is for a CSV or TSV file without a header row; "
                       f"this file names its columns, give one of: text, label")
    named_by_digits = tmp_path / "n.jsonl"  # a column that is called "0" is found by that name
    named_by_digits.write_text("".join(json.dumps({"0": y, "1": t}) + "\n" for y, t in review_rows(6)), encoding="utf-8")
    assert load_test_file(str(named_by_digits), text_column="1", label_column="0").label_names == ["neg", "pos"]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"]}), parquet)
    assert "a column number is for a CSV or TSV file" in error_of(load_test_file, str(parquet), text_column="0",
                                                                   label_column="1")


def test_a_folder_reads_every_file_without_a_header(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_headerless_tsv(folder / "train.tsv", review_rows(30))
    write_headerless_tsv(folder / "dev.tsv", review_rows(6, offset=100))
    write_headerless_tsv(folder / "test.tsv", review_rows(8, offset=200))
    data = load_classification(str(folder), label_column="0", text_column="1")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 30, "validation": 6, "test": 8}
    assert data.splits["test"].ids[0] == "test.tsv:1" and data.splits["validation"].ids[0] == "dev.tsv:1"
    assert data.splits["test"].texts[0] == review_rows(1, offset=200)[0][1]


def test_pair_columns_by_number(tmp_path):
    path = tmp_path / "nli.tsv"
    path.write_text("".join(f"premise {i}\thypothesis {i}\t{'yes' if i % 2 else 'no'}\n" for i in range(10)),
                    encoding="utf-8")
    train = load_test_file(str(path), text_column="0", text_pair_column="1", label_column="2").splits["test"]
    assert train.pairs == [f"hypothesis {i}" for i in range(10)] and train.ids[0] == "nli.tsv:1"
    texts, pairs, ids = load_texts(path, text_column="0", text_pair_column="1")
    assert texts[3] == "premise 3" and pairs[3] == "hypothesis 3" and ids[3] == "nli.tsv:4"


def chnsenticorp_folder() -> Path | None:
    root = os.environ.get("BERTLAB_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    folder = Path(root) / "chnsenticorp"
    return folder if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file() else None


@pytest.mark.skipif(chnsenticorp_folder() is None, reason="no chnsenticorp folder (BERTLAB_DATA_DIR, ../shared/data)")
def test_chnsenticorp_folder_by_numbers():
    """The headerless text<TAB>label files, given as a folder: train.tsv -> train, dev.tsv -> validation."""
    folder = chnsenticorp_folder()
    data = load_classification(str(folder), text_column="0", label_column="1")
    assert data.label_names == ["negative", "positive"]
    assert data.splits["train"].ids[0] == "train.tsv:1" and data.splits["validation"].ids[0] == "dev.tsv:1"
    first = (folder / "train.tsv").read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
    assert data.splits["train"].texts[0] == first[0]
    registered = load_classification("chnsenticorp", data_dir=str(folder.parent))  # same rows as the registered set
    assert len(data.splits["train"]) == len(registered.splits["train"]) + len(registered.splits["validation"])


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A data folder of headerless label<TAB>text files."""
    folder = tmp_path_factory.mktemp("data") / "corpus"
    folder.mkdir()
    write_headerless_tsv(folder / "train.tsv", review_rows(40))
    write_headerless_tsv(folder / "test.tsv", review_rows(12, offset=100))
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained tiny classifier with labels neg and pos: enough for the columns, fast to make."""
    out = tmp_path_factory.mktemp("model") / "clf"
    tokenizer = train_wordpiece([t for _, t in review_rows(40)], vocab_size=100, min_frequency=1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, hidden_size=16,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        id2label={0: "neg", 1: "pos"})
    BertForSequenceClassification(config).eval().save_pretrained(out)
    tokenizer.save(out)
    (out / "args.json").write_text(json.dumps({"max_seq_length": 32, "long_text": "truncate", "stride": 8}))
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_reads_a_headerless_file_by_number(tiny_model, corpus, capsys):
    assert main(["predict", "--model", str(tiny_model), "--file", str(corpus / "test.tsv"), "--text-column", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == [t for _, t in review_rows(12, offset=100)]  # line 1 too
    assert all(r["label"] in ("neg", "pos") for r in records)


def test_evaluate_a_headerless_test_file_by_numbers(tiny_model, corpus, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(corpus / "test.tsv"), "--label-column", "0",
                 "--text-column", "1", "--bootstrap", "0", "--output", str(out)]) == 0
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [f"test.tsv:{n}" for n in range(1, 13)]
    assert [p["label"] for p in predictions] == [y for y, _ in review_rows(12, offset=100)]


def test_baseline_on_a_headerless_folder_and_test_file(corpus, tmp_path):
    out = tmp_path / "base"
    assert main(["baseline", "--data", str(corpus), "--label-column", "0", "--text-column", "1", "--bootstrap", "0",
                 "--C", "1", "--output", str(out)]) == 0
    metrics = json.loads((out / "tfidf_lr" / "metrics.json").read_text())
    assert metrics["n_examples"] == 12
    assert read_jsonl(out / "tfidf_lr" / "predictions.jsonl")[0]["id"] == "test.tsv:1"
    out2 = tmp_path / "base2"
    assert main(["baseline", "--data", str(corpus / "train.tsv"), "--test-data", str(corpus / "test.tsv"),
                 "--label-column", "0", "--text-column", "1", "--bootstrap", "0", "--C", "1",
                 "--output", str(out2)]) == 0
    assert json.loads((out2 / "majority" / "metrics.json").read_text())["n_examples"] == 12


@pytest.mark.parametrize("command", ["baseline", "evaluate", "predict"])
def test_bad_column_numbers_are_one_line_exit_2(command, tiny_model, corpus, tmp_path, capsys):
    test = corpus / "test.tsv"
    argv = {"baseline": ["--data", str(corpus), "--label-column", "0", "--text-column", "3", "--output",
                         str(tmp_path / "o")],
            "evaluate": ["--model", str(tiny_model), "--data", str(test), "--label-column", "0", "--text-column", "3",
                         "--output", str(tmp_path / "o")],
            "predict": ["--model", str(tiny_model), "--file", str(test), "--text-column", "3"]}[command]
    assert main([command, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 1: --text-column 3: the file has 2 columns" in err
    assert not (tmp_path / "o").exists()
    assert main([command, *[a if a != "3" else "text" for a in argv]]) == 2  # a name beside a number
    if command != "predict":
        assert "is a column number but" in capsys.readouterr().err


def test_a_ragged_row_with_given_names_still_lists_them(tmp_path):
    path = tmp_path / "named.tsv"
    path.write_text("fine\tpositive\nbad\tnegative\textra\n", encoding="utf-8")
    with pytest.raises(ClassificationDataError, match=r"line 2: expected 2 TSV fields \(text, label\), found 3"):
        read_table(path, header=False, names=("text", "label"))


def test_numbers_on_a_file_with_a_header_row_are_one_error(tmp_path):
    """A first line of known column names is a header: numbers would make it a data row (a class 'label')."""
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for y, t in review_rows(6)), encoding="utf-8")
    message = error_of(load_classification, str(path), text_column="0", label_column="1")
    assert message == (f"{path}: line 1: a header row (sentence, label), but column numbers are for a file without "
                       f"one: give the columns by name (--text-column sentence --label-column label)")
    assert "give the columns by name (--text-column sentence)" in error_of(load_texts, path, text_column="0")
