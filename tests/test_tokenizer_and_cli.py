import subprocess
import sys

import transformers

from bertlab import WordPieceTokenizer
from bertlab.checkpoint import resolve
from bertlab.cli import main


def test_minilm_tokenizer_matches_transformers():
    ours = WordPieceTokenizer.from_pretrained("minilm-l6")
    vocab = (resolve("minilm-l6") / "vocab.txt").read_text(encoding="utf-8").splitlines()
    ref = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)})
    a = ["Héllo, World! unaffable tokens", "中文也可以"]
    b = ["The second segment.", "x"]
    mine = ours(a, b)
    theirs = ref(a, b, padding=True, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert mine[key].tolist() == theirs[key].tolist(), key
    assert ours.vocab_size == 30522
    assert ours.tokenize("unaffable") == ref.tokenize("unaffable")


def test_cli_info_preset(capsys):
    assert main(["info", "--preset", "base"]) == 0
    assert "109,482,240" in capsys.readouterr().out


def test_cli_bad_model_is_one_line_exit_2():
    """The one test of the real process (exit code, no traceback); every other error-text test calls
    bertlab.cli.main in-process and reads stderr with capsys."""
    proc = subprocess.run([sys.executable, "-m", "bertlab.cli", "info", "./missing-model"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such folder" in proc.stderr
    assert "Traceback" not in proc.stderr
