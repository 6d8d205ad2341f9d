"""`bertlab evaluate` on a small classifier folder and CSV data, its files, its errors; the new figures."""

import json
import random

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from bertlab import BertConfig, BertForSequenceClassification, train_wordpiece
from bertlab.cli import main
from bertlab.evaluate import EvaluateError, map_labels
from bertlab.report import atomic_folder

WORDS = {"pos": ["great", "wonderful", "fun", "moving", "smart"], "neg": ["dull", "awful", "boring", "weak", "silly"],
         "neutral": ["plain", "average", "okay"]}
FILLER = ["the", "film", "was", "a", "story", "and", "it", "really", "quite", "movie"]


def sentences(label, n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.sample(FILLER, 4) + [rng.choice(WORDS[label])] + rng.sample(FILLER, 2)) for _ in range(n)]


def write_csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """train.csv / test.csv with labels neg and pos (sorted: neg = 0, pos = 1)."""
    folder = tmp_path_factory.mktemp("data") / "reviews"
    folder.mkdir()
    for split, n, seed in (("train", 40, 1), ("test", 30, 2)):
        rows = [(t, "pos") for t in sentences("pos", n, seed)] + [(t, "neg") for t in sentences("neg", n // 2, seed + 9)]
        if split == "test":  # a few wrong labels, so that even a good model makes confident errors
            rows[:4] = [(t, "neg") for t, _ in rows[:4]]
        random.Random(seed).shuffle(rows)
        write_csv(folder / f"{split}.csv", rows)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data_folder):
    """A tiny classifier, trained a little, whose label order (pos, neg) differs from the data's (neg, pos)."""
    out = tmp_path_factory.mktemp("model") / "clf"
    texts = [t for label in WORDS for t in sentences(label, 50, 5)]
    tokenizer = train_wordpiece(texts, vocab_size=120, min_frequency=1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        id2label={0: "pos", 1: "neg"})
    model = BertForSequenceClassification(config)
    rows = [line.rsplit(",", 1) for line in (data_folder / "train.csv").read_text().splitlines()[1:]]
    batch = tokenizer([t for t, _ in rows], max_length=32)
    labels = torch.tensor([config.label2id[y] for _, y in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread, above all on a busy machine
    try:
        for _ in range(40):
            optimizer.zero_grad()
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out)
    tokenizer.save(out)
    (out / "args.json").write_text(json.dumps({"max_seq_length": 32, "long_text": "truncate", "stride": 8}))
    return out


@pytest.fixture(scope="module")
def evaluated(model_dir, data_folder):
    code = main(["evaluate", "--model", str(model_dir), "--data", str(data_folder), "--bootstrap", "200"])
    assert code == 0
    return model_dir / "eval-reviews-test"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_evaluation_folder_holds_every_file(evaluated):
    names = {p.name for p in evaluated.iterdir()}
    assert {"metrics.json", "confusion_matrix.json", "confusion_matrix.png", "confusion_matrix_normalized.png",
            "reliability_diagram.png", "per_class_f1.png", "predictions.jsonl", "errors.jsonl", "args.json"} <= names
    for png in evaluated.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    leftovers = [p.name for p in evaluated.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_metrics_agree_with_predictions_and_labels_map_by_name(evaluated, data_folder, model_dir):
    from bertlab.predict import load_classifier, predict_proba

    m = json.loads((evaluated / "metrics.json").read_text())
    preds = read_jsonl(evaluated / "predictions.jsonl")
    # true labels come from the CSV by row id, whatever the model's label order
    lines = (data_folder / "test.csv").read_text().splitlines()
    for p in preds:
        line = int(p["id"].split(":")[1])
        assert lines[line - 1].rsplit(",", 1)[1] == p["label"]
    assert m["label_names"] == ["pos", "neg"] and m["n_examples"] == len(preds) == 45
    assert m["settings"]["max_seq_length"] == 32  # from the run's args.json
    y = [p["label"] for p in preds]
    yhat = [p["predicted"] for p in preds]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, yhat), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, yhat, average="macro"), abs=1e-12)
    assert set(yhat) == {"pos", "neg"} and m["accuracy"] > 0.8  # it learnt the keywords
    # probabilities are the model's own, in input order
    model, tokenizer = load_classifier(str(model_dir))
    texts = [line.rsplit(",", 1)[0] for line in lines[1:]]
    direct = predict_proba(model, tokenizer, texts, max_seq_length=32)
    got = torch.tensor([[p["probabilities"]["pos"], p["probabilities"]["neg"]] for p in preds])
    torch.testing.assert_close(got, direct.float(), atol=2e-6, rtol=0)
    cm = json.loads((evaluated / "confusion_matrix.json").read_text())
    assert cm["labels"] == ["pos", "neg"] and cm["matrix"] == m["confusion_matrix"]
    assert sum(map(sum, cm["matrix"])) == 45
    assert m["roc_auc"] is not None and 0 <= m["roc_auc"] <= 1
    lo, hi = m["intervals"]["accuracy"]
    assert lo <= m["accuracy"] <= hi and m["intervals"]["resamples"] == 200
    assert 0 <= m["ece"] <= 1 and len(m["calibration"]["bins"]) == 15
    errors = read_jsonl(evaluated / "errors.jsonl")
    assert len(errors) == sum(a != b for a, b in zip(y, yhat))
    assert [e["confidence"] for e in errors] == sorted((e["confidence"] for e in errors), reverse=True)
    assert m["confident_errors"] == errors[:10] and all("text" in e for e in errors)


def test_summary_printed_and_evaluating_again_replaces_the_folder(model_dir, data_folder, capsys):
    out = model_dir / "eval-again"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data_folder), "--output", str(out)]) == 0
    (out / "stale.txt").write_text("from before")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data_folder), "--output", str(out),
                 "--bootstrap", "0", "--split", "validation"]) == 0
    shown = capsys.readouterr().out
    assert "accuracy" in shown and "macro F1" in shown and "ECE" in shown and str(out) in shown
    assert not (out / "stale.txt").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["intervals"] is None and m["split"] == "validation"


def run_error(capsys, *argv):
    code = main(["evaluate", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_label_the_model_never_saw_is_one_line_naming_file_and_row(tmp_path, model_dir, capsys):
    folder = tmp_path / "three"
    folder.mkdir()
    write_csv(folder / "train.csv", [(f"{t} {i}", y) for i in range(20)
                                     for t, y in (("good fun", "pos"), ("dull", "neg"), ("plain", "neutral"))])
    write_csv(folder / "test.csv", [("good fun", "pos"), ("dull", "neg"), ("so so", "neutral")])
    out = tmp_path / "out"
    err = run_error(capsys, "--model", model_dir, "--data", folder, "--output", out)
    assert f"{folder / 'test.csv'}: line 4: label 'neutral'" in err and "pos, neg" in err
    assert not out.exists()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, model_dir, data_folder, capsys):
    # a folder with a training file only has train and validation (a single file would be the test set)
    only_train = tmp_path / "only-train"
    only_train.mkdir()
    write_csv(only_train / "train.csv",
              [(t, "pos") for t in sentences("pos", 10, 3)] + [(t, "neg") for t in sentences("neg", 10, 4)])
    assert "no test split" in run_error(capsys, "--model", model_dir, "--data", only_train)
    assert not (model_dir / "eval-only-train-test").exists()
    # an unrelated, non-empty output folder is left alone
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "not empty" in run_error(capsys, "--model", model_dir, "--data", data_folder, "--output", busy)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    # a folder with a metrics.json that evaluate did not write (here: a baseline's output) is left alone
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    (other / "args.json").write_text('{"bertlab_command": "baseline"}')
    assert "is not an earlier output of bertlab evaluate" in run_error(
        capsys, "--model", model_dir, "--data", data_folder, "--output", other)
    assert sorted(p.name for p in other.iterdir()) == ["args.json", "metrics.json"]
    assert "nope" in run_error(capsys, "--model", tmp_path / "nope", "--data", data_folder)
    assert "missing.csv" in run_error(capsys, "--model", model_dir, "--data", tmp_path / "missing.csv")


def test_map_labels_by_name_then_ignoring_case():
    assert map_labels([0, 1, 1, 0], ["negative", "positive"], ["POSITIVE", "NEGATIVE"], list("abcd")) == [1, 0, 0, 1]
    assert map_labels([1], ["neg", "pos"], ["pos", "neg", "extra"], ["x"]) == [0]
    with pytest.raises(EvaluateError, match="FILE row 7: label 'maybe'"):
        map_labels([0, 1], ["yes", "maybe"], ["yes", "no"], ["r6", "r7"], where=lambda i: f"FILE row {i[1:]}")


def test_atomic_folder_leaves_nothing_on_failure_and_keeps_the_old_folder(tmp_path):
    target = tmp_path / "eval"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "metrics.json").write_text("{}")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_folder(target) as tmp:
        (tmp / "metrics.json").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "metrics.json").write_text("2")
            raise RuntimeError("boom")
    assert (target / "metrics.json").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["eval"]


def test_plot_functions_draw_on_a_given_axis(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bertlab import plots
    from bertlab.metrics import classification_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    probs = rng.dirichlet([1, 1, 1], 300)
    m = classification_metrics(y, probs, ["a", "b", "c"], bootstrap=0)
    fig, axes = plt.subplots(1, 4)
    assert plots.plot_confusion_matrix(m["confusion_matrix"], m["label_names"], ax=axes[0]) is axes[0]
    assert plots.plot_confusion_matrix(m["confusion_matrix"], m["label_names"], ax=axes[1], normalize=True) is axes[1]
    assert plots.plot_reliability_diagram(m["calibration"], ax=axes[2]) is axes[2]
    assert plots.plot_per_class_f1(m, ax=axes[3]) is axes[3]
    texts = [t.get_text() for t in axes[0].texts]
    assert texts == [str(v) for row in m["confusion_matrix"] for v in row]  # the counts are written in
    assert "(" in axes[1].texts[0].get_text()  # shares with counts
    plt.close(fig)
    path = plots.save_reliability_diagram(m["calibration"], tmp_path / "r.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_single_file_is_evaluated_whole_as_the_test_set(evaluated, model_dir, data_folder, tmp_path):
    out = tmp_path / "eval-file"
    code = main(["evaluate", "--model", str(model_dir), "--data", str(data_folder / "test.csv"), "--bootstrap", "0",
                 "--output", str(out)])
    assert code == 0
    whole = json.loads((out / "metrics.json").read_text())
    folder = json.loads((evaluated / "metrics.json").read_text())
    n_rows = len((data_folder / "test.csv").read_text().splitlines()) - 1
    assert whole["n_examples"] == n_rows == folder["n_examples"]  # every row, none held out
    assert whole["accuracy"] == folder["accuracy"] and whole["confusion_matrix"] == folder["confusion_matrix"]


def test_a_single_file_with_an_unknown_label_is_one_line(model_dir, tmp_path, capsys):
    bad = tmp_path / "test.csv"
    write_csv(bad, [("the film was great", "pos"), ("a weak story", "meh")])
    assert main(["evaluate", "--model", str(model_dir), "--data", str(bad), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: line 3: label 'meh'" in err
    assert not (tmp_path / "o").exists()
