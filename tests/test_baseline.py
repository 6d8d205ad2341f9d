"""`bertlab baseline`: majority class and TF-IDF + logistic regression, their files, choices and errors."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bertlab.baseline import DEFAULT_C_GRID, TfidfLogReg, choose_analyzer, cjk_share, majority_proba
from bertlab.cli import main

KEYWORDS = {"apple": ["crisp", "orchard", "cider"], "banana": ["peel", "tropical", "yellow"],
            "cherry": ["stone", "tart", "blossom"]}
FILLER = "the a of and it was this that very with some".split()


def synthetic_rows(n, seed, weights=(0.6, 0.3, 0.1)):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choices(list(KEYWORDS), weights)[0]
        rows.append((" ".join(rng.sample(FILLER, 5) + [rng.choice(KEYWORDS[label]), f"w{i}"]), label))
    return rows


def write_csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def fruit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "fruit"
    folder.mkdir()
    for split, n, seed in (("train", 300, 1), ("validation", 80, 2), ("test", 100, 3)):
        write_csv(folder / f"{split}.csv", synthetic_rows(n, seed))
    return folder


@pytest.fixture(scope="module")
def fruit_run(fruit, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fruit-baselines"
    assert main(["baseline", "--data", str(fruit), "--output", str(out), "--bootstrap", "200", "--C", "1", "10"]) == 0
    return out


def test_one_folder_per_baseline_in_the_evaluate_format(fruit_run, fruit):
    summary = json.loads((fruit_run / "summary.json").read_text())
    assert set(summary["baselines"]) == {"majority", "tfidf_lr"}
    for name in ("majority", "tfidf_lr"):
        folder = fruit_run / name
        assert {"metrics.json", "confusion_matrix.json", "confusion_matrix.png", "reliability_diagram.png",
                "per_class_f1.png", "predictions.jsonl", "errors.jsonl"} <= {p.name for p in folder.iterdir()}
        m = json.loads((folder / "metrics.json").read_text())
        assert m["model"] == name and m["kind"] == "baseline" and m["split"] == "test" and m["n_examples"] == 100
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision",
                    "weighted_recall", "weighted_f1", "per_class", "confusion_matrix", "roc_auc", "intervals", "ece",
                    "calibration", "confident_errors"):
            assert key in m
        assert m["label_names"] == ["apple", "banana", "cherry"] and m["roc_auc"] is None  # three classes
        assert summary["baselines"][name]["accuracy"] == m["accuracy"]
    test_labels = [line.rsplit(",", 1)[1] for line in (fruit / "test.csv").read_text().splitlines()[1:]]
    majority = json.loads((fruit_run / "majority" / "metrics.json").read_text())
    assert majority["settings"]["predicts"] == "apple"
    assert majority["accuracy"] == pytest.approx(test_labels.count("apple") / 100)
    assert majority["per_class"]["cherry"]["f1"] == 0.0 and majority["macro_f1"] < majority["accuracy"] / 2
    assert majority["ece"] < 0.2  # the training frequencies are honest probabilities
    tfidf = json.loads((fruit_run / "tfidf_lr" / "metrics.json").read_text())
    assert tfidf["accuracy"] > 0.9  # the keywords give the fruit away
    s = tfidf["settings"]
    assert s["analyzer"] == "word" and s["ngram_range"] == [1, 2] and s["C"] in (1.0, 10.0)
    assert set(s["validation_accuracy"]) == {"1.0", "10.0"} and s["C_chosen_on"] == "validation"
    assert s["validation_accuracy"][str(s["C"])] == max(s["validation_accuracy"].values())


def test_chinese_text_gets_character_ngrams(tmp_path):
    assert cjk_share(["这家酒店很好", "服务不错 ok"]) > 0.8
    assert cjk_share(["a fine film", "日本"]) < 0.3
    assert choose_analyzer(["房间干净，早餐丰富"]) == "char" and choose_analyzer(["clean room"]) == "word"
    assert choose_analyzer(["房间干净"], "word") == "word"
    rng = random.Random(0)
    good, bad = "好棒赞美满意舒服", "差脏吵失望糟糕"
    rows = [("".join(rng.sample("房间服务早餐位置价格前台", 4)) + rng.choice(good if y == "positive" else bad), y)
            for y in ["positive", "negative"] * 60]
    write_csv(tmp_path / "hotel.csv", rows)
    assert main(["baseline", "--data", str(tmp_path / "hotel.csv"), "--split", "validation", "--bootstrap", "0",
                 "--C", "4", "--output", str(tmp_path / "out")]) == 0
    m = json.loads((tmp_path / "out" / "tfidf_lr" / "metrics.json").read_text())
    assert m["settings"]["analyzer"] == "char" and m["settings"]["ngram_range"] == [1, 3]
    assert m["accuracy"] == 1.0 and m["roc_auc"] == 1.0 and m["intervals"] is None


def test_majority_proba_and_class_columns():
    p = majority_proba([0, 2, 2, 2], 3, 4)
    assert p.shape == (3, 4) and p[0].tolist() == [0.25, 0.0, 0.75, 0.0]
    model = TfidfLogReg("word", [1.0]).fit(["red apple", "green apple", "ripe cherry", "dark cherry"], [0, 0, 2, 2], 3)
    probs = model.predict_proba(["apple pie", "cherry"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1) and (probs[:, 1] == 0).all()
    assert probs.argmax(1).tolist() == [0, 2] and model.C == 1.0


def test_c_is_chosen_on_validation_with_ties_going_to_the_smaller_c():
    texts = ["good", "great", "bad", "awful"] * 5
    labels = [1, 1, 0, 0] * 5
    model = TfidfLogReg("word", [8.0, 0.5, 2.0]).fit(texts, labels, 2, ["good", "awful"], [1, 0])
    assert list(model.validation_accuracy) == ["0.5", "2.0", "8.0"]  # fitted in increasing order
    assert set(model.validation_accuracy.values()) == {1.0} and model.C == 0.5
    assert DEFAULT_C_GRID == tuple(sorted(DEFAULT_C_GRID))


@pytest.mark.slow  # TF-IDF + logistic regression on all of Rotten Tomatoes
def test_rotten_tomatoes_baselines(tmp_path):
    """The embedded data: majority = the 'fresh' share; TF-IDF with the C the default grid picks (16)."""
    summary_out = tmp_path / "rt"
    assert main(["baseline", "--data", "rotten_tomatoes", "--C", "16", "--bootstrap", "100",
                 "--output", str(summary_out)]) == 0
    s = json.loads((summary_out / "summary.json").read_text())["baselines"]
    assert s["majority"]["accuracy"] == pytest.approx(741 / 1282, abs=1e-12)  # 'fresh' rows of the test split
    assert s["tfidf_lr"]["accuracy"] == pytest.approx(0.795, abs=0.01)
    assert s["tfidf_lr"]["macro_f1"] > s["majority"]["macro_f1"] + 0.3


SST2 = Path(os.environ.get("BERTLAB_DATA_DIR", "/nonexistent")) / "sst2" / "test.tsv"


@pytest.mark.slow  # TF-IDF + logistic regression on all of SST-2
@pytest.mark.skipif(not SST2.is_file(), reason="needs BERTLAB_DATA_DIR/sst2")
def test_sst2_tfidf_matches_the_reference_point(tmp_path):
    """README reference: SST-2 test accuracy 0.815. C = 8 is what the default grid picks on validation."""
    assert main(["baseline", "--data", "sst2", "--C", "8", "--bootstrap", "0", "--top-errors", "3",
                 "--output", str(tmp_path / "sst2")]) == 0
    m = json.loads((tmp_path / "sst2" / "tfidf_lr" / "metrics.json").read_text())
    assert m["n_examples"] == 872
    assert m["accuracy"] == pytest.approx(0.815, abs=0.01)


def run_error(capsys, *argv):
    code = main(["baseline", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, fruit, capsys):
    out = tmp_path / "out"
    assert "--C -1" in run_error(capsys, "--data", fruit, "--C", "-1", "--output", out)
    assert "nothing.csv" in run_error(capsys, "--data", tmp_path / "nothing.csv", "--output", out)
    single = tmp_path / "single.csv"
    write_csv(single, synthetic_rows(50, 4))
    assert "no test split" in run_error(capsys, "--data", single, "--output", out)
    assert not out.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "not empty" in run_error(capsys, "--data", fruit, "--output", busy)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_second_run_replaces_the_first(fruit, tmp_path):
    out = tmp_path / "again"
    assert main(["baseline", "--data", str(fruit), "--output", str(out), "--bootstrap", "0", "--C", "1"]) == 0
    (out / "majority" / "stale.txt").write_text("old")
    assert main(["baseline", "--data", str(fruit), "--output", str(out), "--bootstrap", "0", "--C", "2"]) == 0
    assert not (out / "majority" / "stale.txt").exists()
    assert json.loads((out / "tfidf_lr" / "metrics.json").read_text())["settings"]["C"] == 2.0


def test_a_run_folder_of_another_command_is_never_replaced(fruit, tmp_path, capsys):
    # A pretraining run holds summary.json and args.json too; baseline must not take it for its own.
    run = tmp_path / "pretrain-run"
    run.mkdir()
    files = {"summary.json": '{"steps": 100}', "args.json": '{"output": "pretrain-run"}',
             "model.safetensors": "weights", "vocab.txt": "[PAD]"}
    for name, text in files.items():
        (run / name).write_text(text)
    # an evaluate output is not a baseline output either
    evaluated = tmp_path / "eval"
    evaluated.mkdir()
    (evaluated / "metrics.json").write_text("{}")
    (evaluated / "args.json").write_text('{"bertlab_command": "evaluate"}')
    for folder in (run, evaluated):
        before = {p.name: p.read_text() for p in folder.iterdir()}
        err = run_error(capsys, "--data", fruit, "--split", "validation", "--output", folder, "--bootstrap", "0")
        assert "is not an earlier output of bertlab baseline" in err and "--output" in err
        assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow  # a fresh interpreter
def test_importing_bertlab_does_not_need_scikit_learn():
    code = ("import sys, bertlab, bertlab.metrics, bertlab.evaluate, bertlab.baseline, bertlab.cli; "
            "bertlab.cli.build_parser(); assert 'sklearn' not in sys.modules, 'sklearn imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_the_flags():
    from bertlab.cli import build_parser

    parser = build_parser()
    for command, flags in (("baseline", ["--data", "--split", "--test-data", "--output", "--analyzer", "--C", "--text-column",
                                         "--label-column", "--validation-split", "--bootstrap"]),
                           ("evaluate", ["--model", "--data", "--split", "--output", "--batch-size",
                                         "--max-seq-length", "--long-text", "--stride", "--text-pair-column",
                                         "--data-dir", "--seed", "--top-errors"])):
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        text = sub.format_help()
        for flag in flags:
            assert flag in text, (command, flag)


def test_test_data_is_a_file_evaluated_whole_with_labels_matched_by_name(fruit, fruit_run, tmp_path, capsys):
    upper = tmp_path / "my-test.csv"  # the folder's test file, label names in capitals, matched by name
    rows = [line.rsplit(",", 1) for line in (fruit / "test.csv").read_text().splitlines()[1:]]
    write_csv(upper, [(t, y.upper()) for t, y in rows])
    out = tmp_path / "b"
    assert main(["baseline", "--data", str(fruit / "train.csv"), "--test-data", str(upper), "--output", str(out),
                 "--bootstrap", "0", "--C", "1", "10"]) == 0
    m = json.loads((out / "tfidf_lr" / "metrics.json").read_text())
    assert m["n_examples"] == len(rows) and m["label_names"] == ["apple", "banana", "cherry"]
    preds = [json.loads(line) for line in (out / "tfidf_lr" / "predictions.jsonl").read_text().splitlines()]
    assert [p["label"] for p in preds] == [y for _, y in rows]
    write_csv(upper, [("a crisp apple", "APPLE"), ("a date", "date")])
    assert main(["baseline", "--data", str(fruit / "train.csv"), "--test-data", str(upper), "--output",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{upper}: line 3: label 'date'" in err and not (tmp_path / "c").exists()
