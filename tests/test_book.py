"""The book's notebooks: listed in the table of contents, stored cleanly, installable anywhere."""

import json
import re
from pathlib import Path

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
        assert "find_spec(\"bertlab\")" in first and "torch.cuda.is_available()" in first


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
