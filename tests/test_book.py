"""The book's notebooks: listed in the table of contents, stored cleanly, installable anywhere."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def repository_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    assert match, "_config.yml has no repository: url:"
    return match.group(1)


def test_there_are_notebooks_and_each_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert NOTEBOOKS
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


def test_first_code_cell_installs_from_the_configured_repository():
    """The Colab install line and the launch buttons use the same repository (change both together)."""
    url = repository_url()
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert f'REPO = "{url}"' in first, f"{nb.name}: first code cell must set REPO = \"{url}\" (see _config.yml)"
        assert 'f"bertlab[book] @ git+{REPO}"' in first and "DEVICE, SIZE = bertlab.book.setup()" in first, (
            f"{nb.name}: the first code cell must install bertlab[book] from REPO and call bertlab.book.setup()")


def test_the_repository_url_lives_in_config_and_first_cells_only():
    """A publisher changes the URL in _config.yml and the first cells; nowhere else may hold it."""
    url = repository_url()
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: the tracked files are unknown")
    for path in (ROOT / name for name in tracked):
        if not path.is_file() or path.suffix not in (".py", ".md", ".yml", ".ipynb", ".toml", ".txt", ""):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":
            cells = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
            text = "".join("".join(c["source"]) for c in cells[1:])
        elif path.name in ("_config.yml", "README.md"):
            continue
        assert url not in text, f"{path.relative_to(ROOT)} repeats the repository URL (keep it in _config.yml and first cells)"


def test_device_and_size_are_printed_by_a_cell_whose_output_is_not_compared():
    for nb in NOTEBOOKS:
        for i, cell in enumerate(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"):
            tags = cell.get("metadata", {}).get("tags", [])
            text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
            if "device: " in text or "DEVICE, SIZE" in "".join(cell["source"]):
                assert "nbval-ignore-output" in tags, f"{nb.name} code cell {i} prints the device but is compared"


def test_data_packages_agree_with_requirements():
    """bertlab.book installs the same pins that requirements.txt installs with --no-deps (but for the
    data of tools/ scripts, which no chapter reads: marked "tools only")."""
    from bertlab.book import DATA_PACKAGES

    nodeps = sorted(line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if re.search(r"#\s*no-deps", line) and line.split("#")[0].strip() and "tools only" not in line)
    assert sorted(DATA_PACKAGES.values()) == nodeps


def test_notebooks_are_stored_executed_and_clean():
    for nb in NOTEBOOKS:
        text = nb.read_text()
        data = json.loads(text)
        code = [c for c in data["cells"] if c["cell_type"] == "code"]
        assert all(c.get("execution_count") for c in code if c["source"]), f"{nb.name} is not stored executed"
        outputs = [o for c in code for o in c.get("outputs", [])]
        assert not [o for o in outputs if o["output_type"] == "error"], f"{nb.name} stores an error"
        assert not [o for o in outputs if o.get("name") == "stderr"], f"{nb.name} stores stderr output"
        for pattern in ("/root/", "/tmp/", "/work/", "site-packages", " at 0x"):
            assert pattern not in text, f"{nb.name} stores a machine-specific string: {pattern!r}"


def test_chapter_times_from_an_nbval_junit_report(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import time_chapters

    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite>'
                   '<testcase classname="notebooks.01_attention.ipynb" name="Cell 0" time="1.5"/>'
                   '<testcase classname="notebooks.01_attention.ipynb" name="Cell 1" time="2.25"/>'
                   '<testcase classname="notebooks.A1_misconceptions.ipynb" name="Cell 0" time="3"/>'
                   '<testcase classname="tests.test_book" name="other" time="9"/>'
                   '</testsuite></testsuites>')
    assert time_chapters.times_from_junit(xml) == {"notebooks/01_attention": 3.8, "notebooks/A1_misconceptions": 3.0}
    assert time_chapters.fmt(None) == "not measured yet" and time_chapters.fmt(125) == "2.1 min"


def test_landing_page_has_the_chapter_time_table():
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "<!-- chapter-times:start -->" in intro and "<!-- chapter-times:end -->" in intro
