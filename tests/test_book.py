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
