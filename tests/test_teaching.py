"""The book as a book: exercises that work everywhere, diagrams drawn by code, one notation, citations
that read well outside the website, check cells out of the reading flow.

What these tests hold to (issue 18):

* every exercise solution is a code cell tagged `solution`, right after its exercise, hidden in all
  three places a reader meets it: on the website (`hide-cell`: a toggle), in JupyterLab
  (`jupyter.source_hidden`) and on Colab (`cellView: form` with a `# @title` first line); it is
  stored executed, so nbval runs it in CI and compares what it printed; at least 40 hold code;
* no MyST `{cite}` role and no dropdown admonition in a chapter (both show as raw text in Jupyter);
* at least eight code cells tagged `diagram`, in at least six chapters, each drawing one of
  `bertlab.plots.diagram_*` and storing its picture; every such function is used;
* the first page and the notation page are in the table of contents;
* a code cell of five or more asserts is a check cell, hidden from the reading flow on the website.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TITLE = re.compile(r"# @title Solution to exercise (\w+)$")


def cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def solutions() -> list[tuple[Path, int, dict]]:
    return [(nb, i, c) for nb in NOTEBOOKS for i, c in enumerate(cells(nb))
            if "solution" in c.get("metadata", {}).get("tags", [])]


def test_every_solution_is_a_hidden_code_cell_right_after_its_exercise():
    found = solutions()
    assert found, "no cell is tagged solution"
    for nb, i, cell in found:
        where = f"{nb.name} cell {i}"
        meta = cell["metadata"]
        assert cell["cell_type"] == "code", f"{where}: a solution is a code cell"
        assert "hide-cell" in meta["tags"], f"{where}: tag hide-cell (a toggle on the website)"
        assert meta.get("jupyter", {}).get("source_hidden") is True, f"{where}: jupyter.source_hidden (JupyterLab)"
        assert meta.get("cellView") == "form", f"{where}: cellView form (Colab hides the code)"
        first = source(cell).splitlines()[0]
        match = TITLE.match(first)
        assert match, f"{where}: first line must be '# @title Solution to exercise N', not {first!r}"
        before = cells(nb)[i - 1]
        assert before["cell_type"] == "markdown" and f"**{match.group(1)}." in source(before), (
            f"{where}: the cell before a solution states exercise {match.group(1)}")


def test_at_least_forty_solutions_hold_code_and_all_are_stored_executed():
    with_code = 0
    for nb, i, cell in solutions():
        code = code_lines(source(cell))
        if not code:
            continue
        with_code += 1
        where = f"{nb.name} cell {i}"
        assert cell.get("execution_count"), f"{where}: solution not stored executed"
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], f"{where}: stores an error"
        checked = any(re.search(r"\bassert\b|assert_close|isclose", line) for line in code)
        shown = any(o["output_type"] in ("stream", "execute_result", "display_data") for o in cell["outputs"])
        assert checked or shown, f"{where}: a solution with code asserts or prints (nbval compares it) its result"
    assert with_code >= 40, f"only {with_code} solution cells hold code"


def test_no_dropdown_solution_or_cite_role_is_left_in_a_chapter():
    for nb in NOTEBOOKS:
        for i, cell in enumerate(cells(nb)):
            text = source(cell)
            assert "{admonition} Solution" not in text, f"{nb.name} cell {i}: a dropdown solution (raw text in Jupyter)"
            assert "{cite:" not in text, f"{nb.name} cell {i}: a {{cite}} role (raw text in Jupyter and Colab)"


def test_citation_links_name_entries_of_the_bibliography():
    """Each '[Author et al., YEAR](../book/references.md)' names a year and an author found in references.bib."""
    bib = (ROOT / "book" / "references.bib").read_text()
    link = re.compile(r"\[([^\]]*?)\]\(\.\./book/references\.md\)")
    seen = 0
    for nb in NOTEBOOKS:
        for cell in cells(nb):
            for label in link.findall(source(cell)):
                seen += 1
                year = re.search(r"\b(1[89]\d\d|20\d\d)\b", label)
                assert year, f"{nb.name}: citation link {label!r} has no year"
                assert re.search(r"year\s*=\s*\{" + year.group(1) + r"\}", bib), f"{nb.name}: no {year.group(1)} entry"
    assert seen >= 40


def test_diagrams_are_drawn_by_code_in_at_least_six_chapters():
    from bertlab import plots

    drawn: dict[str, list[str]] = {}
    for nb in NOTEBOOKS:
        for i, cell in enumerate(cells(nb)):
            if "diagram" not in cell.get("metadata", {}).get("tags", []):
                continue
            where = f"{nb.name} cell {i}"
            names = re.findall(r"\bdiagram_\w+", source(cell))
            assert cell["cell_type"] == "code" and names, f"{where}: a diagram cell calls bertlab.plots.diagram_*"
            assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), f"{where}: stores no picture"
            for name in names:
                drawn.setdefault(name, []).append(nb.stem)
    chapters = {stem for stems in drawn.values() for stem in stems}
    assert sum(len(v) for v in drawn.values()) >= 8 and len(chapters) >= 6, drawn
    functions = {n for n in dir(plots) if n.startswith("diagram_") and callable(getattr(plots, n))}
    assert functions and functions <= set(drawn), f"diagrams no chapter draws: {sorted(functions - set(drawn))}"


def test_first_page_and_notation_are_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    assert "notebooks/00_what_bert_is_for" in toc and "book/notation" in toc
    assert toc.index("notebooks/00_what_bert_is_for") < toc.index("notebooks/01_attention")
    notation = (ROOT / "book" / "notation.md").read_text()
    for symbol in ("L", "H", "A", "d_k", "row"):
        assert symbol in notation


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_are_hidden_from_the_reading_flow(nb):
    for i, cell in enumerate(cells(nb)):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or "solution" in tags:
            continue
        asserts = sum(1 for line in code_lines(source(cell)) if re.match(r"\s*assert\b", line))
        if asserts >= 5:
            assert "hide-input" in tags, f"{nb.name} cell {i}: {asserts} asserts, a check cell: tag hide-input"
        if "hide-input" in tags:
            assert source(cell).startswith("# Check"), f"{nb.name} cell {i}: a check cell starts '# Check: ...'"


def test_cell_ids_are_unique():
    for nb in NOTEBOOKS:
        ids = [c.get("id") for c in cells(nb)]
        assert all(ids) and len(ids) == len(set(ids)), f"{nb.name}: missing or repeated cell ids"
