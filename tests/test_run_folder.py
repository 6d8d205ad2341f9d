"""A run folder is held by one command at a time, cleaned of what a killed run left (and of nothing
else), written with the user's umask; what a resumed run, a cut text and bad flags say."""

import os
import signal
import subprocess
import sys

import pytest

from bertlab import BertConfig, BertForSequenceClassification, WordPieceTokenizer
from bertlab.cli import main
from bertlab.common import BertlabError, check_writable, claimed_run_folder, output_lock, remove_orphans
from bertlab.data.classification import ClassificationDataError, load_classification
from bertlab.encoding import encode_texts
from bertlab.train import CHECKPOINTS, STATE_FILE, resume_line


def test_a_held_folder_is_refused_in_one_line_naming_the_flag(tmp_path):
    with output_lock(tmp_path / "run"):
        with pytest.raises(BertlabError, match=r"^--output .*run: in use by another bertlab command"):
            with output_lock(tmp_path / "run"):
                pass
    with output_lock(tmp_path / "run"):  # released at the end of the block
        pass
    assert [p.name for p in (tmp_path / "run").iterdir()] == []  # the lock leaves no file behind


def test_a_killed_holder_does_not_leave_the_lock_stuck(tmp_path):
    folder = tmp_path / "run"
    code = ("import sys, time; from bertlab.common import output_lock\n"
            f"with output_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(BertlabError, match="in use"):
            with output_lock(folder):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with output_lock(folder):
        pass


def test_orphans_are_removed_and_nothing_else(tmp_path):
    ours = [".step-00000010.tmp-123-deadbeef", ".latest.tmp-5-0123abcd", ".step-00000010.4567.tmp",
            ".metrics.json.old-9-89abcdef"]
    theirs = [".hidden", "notes.tmp", ".x.tmp-abc", ".y.tmp-12-XYZ12345", "step-00000010", "model.safetensors"]
    (tmp_path / ours[0]).mkdir()
    (tmp_path / ours[0] / "model.safetensors").write_bytes(b"half")
    for name in ours[1:] + theirs:
        (tmp_path / name).write_text("x")
    assert sorted(remove_orphans(tmp_path)) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs)


def test_a_claimed_run_folder_is_checked_again_and_cleaned(tmp_path):
    out = tmp_path / "run"
    (out / CHECKPOINTS / ".step-00000002.tmp-1-00000000").mkdir(parents=True)
    with pytest.raises(BertlabError, match="not empty"):
        with claimed_run_folder(out, resume=False):
            pass
    with claimed_run_folder(out, resume=True) as removed:
        assert removed == [".step-00000002.tmp-1-00000000"]
    assert list((out / CHECKPOINTS).iterdir()) == []


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    with pytest.raises(BertlabError, match=r"^--output .*a-file/run: cannot be written here"):
        check_writable(blocker / "run")
    check_writable(tmp_path / "new" / "run")  # a folder that can be made is fine
    code = main(["finetune", "--from-scratch", "--preset", "tiny", "--model", "minilm-l6",
                 "--output", str(blocker / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--output" in err and blocker.read_text() == "mine"


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_follow_the_umask(tmp_path, umask):
    config = BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    tokenizer = WordPieceTokenizer.from_pretrained("minilm-l6")
    old = os.umask(umask)
    try:
        BertForSequenceClassification(config).save_pretrained(tmp_path / "m")
        tokenizer.save(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert set(modes) >= {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json"}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_resume_says_where_it_continues(tmp_path):
    assert resume_line(tmp_path).endswith("starting from step 0")
    step = tmp_path / CHECKPOINTS / "step-00000020"
    step.mkdir(parents=True)
    (step / STATE_FILE).write_bytes(b"")
    (tmp_path / CHECKPOINTS / "latest").write_text("step-00000020\n")
    assert resume_line(tmp_path) == f"--resume: continuing from step 20 ({CHECKPOINTS}/step-00000020)"


def test_a_nul_byte_in_a_text_names_the_row(tmp_path):
    path = tmp_path / "data.csv"
    rows = [f"text number {i},{'pos' if i % 2 else 'neg'}" for i in range(20)]
    rows[6] = "a broken\x00 export,pos"
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ClassificationDataError, match=rf"^{path}: line 8: a NUL byte in the text"):
        load_classification(str(path))


def test_truncated_texts_are_counted():
    tokenizer = WordPieceTokenizer.from_pretrained("minilm-l6")
    enc = encode_texts(tokenizer, ["short", "a much longer text that cannot fit in eight tokens at all", "tiny"],
                       max_seq_length=8)
    assert enc.truncated == 1 and max(len(ids) for ids in enc.input_ids) == 8


def test_fill_mask_top_k_is_range_checked(capsys):
    assert main(["fill-mask", "--model", "minilm-l6", "--top-k", "0", "the [MASK] is good"]) == 2
    err = capsys.readouterr().err
    assert err == "bertlab fill-mask: error: --top-k 0: must be at least 1\n"


def test_help_shows_each_default_once_and_no_escaped_percent():
    from bertlab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("pretrain", "finetune", "evaluate", "baseline", "predict", "bench"):
        text = sub[name].format_help()
        assert "%%" not in text and "(default: None)" not in text, name
        for block in text.split("\n  -")[1:]:
            assert block.count("(default") <= 1, (name, block)


def test_what_a_killed_evaluate_left_beside_its_output_is_removed(tmp_path):
    from bertlab.report import atomic_folder, remove_stale_temporaries

    out = tmp_path / "eval"
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that has ended
    stale = [tmp_path / f".eval.tmp-{gone.pid}-0123abcd", tmp_path / f".eval.old-{gone.pid}-89abcdef"]
    live = tmp_path / f".eval.tmp-{os.getpid()}-0123abcd"  # a command still writing it: left alone
    other = [tmp_path / f".report.tmp-{gone.pid}-0123abcd", tmp_path / ".eval.tmp-notes", tmp_path / "eval.tmp"]
    for p in stale + [live] + other:
        p.mkdir()
        (p / "x").write_text("x")
    assert remove_stale_temporaries(out) == sorted(p.name for p in stale)
    assert live.is_dir() and all(p.is_dir() for p in other)
    (tmp_path / f".eval.tmp-{gone.pid}-fedcba98").mkdir()
    with atomic_folder(out) as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert (out / "metrics.json").is_file() and not (tmp_path / f".eval.tmp-{gone.pid}-fedcba98").exists()
