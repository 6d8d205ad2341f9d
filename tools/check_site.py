"""Check a built Jupyter Book site (standard library only).

usage: python tools/check_site.py [_build/html]

Checks that
  * index.html exists, and a page exists for every file named in _toc.yml;
  * no HTML page loads a script or stylesheet (<script src>, <link href>) from the network,
    and no page or stylesheet refers to Google Fonts;
  * every local script and stylesheet a page loads exists;
  * MathJax is referenced by at least one page, always from a local file that exists;
  * every notebook page embeds at least one image (a file under _images/ or a data: URI)
    and has a Colab launch link;
  * the bibliography page (book/references, when _toc.yml lists it) shows one entry for each
    entry of book/references.bib, every citation on every page links to one of those entries,
    and no page shows an unrendered {cite:...} role.
Prints one summary line; exits non-zero with the list of problems on failure.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
# What a chapter prints in each cell it skips because its data set was not found (see chapter 11).
DATA_ABSENT = "skipped: this cell needs the "
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)


class Tags(HTMLParser):
    """Collects the attributes of <script>, <link>, <img> and <a> tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.links: list[tuple[str, str]] = []  # (rel, href)
        self.images: list[str] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "link" and a.get("href"):
            self.links.append((a.get("rel", ""), a["href"]))
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "a" and a.get("href"):
            self.anchors.append(a["href"])

    handle_startendtag = handle_starttag


BIB_ENTRY = re.compile(r"^\s*@(?!comment|string|preamble)\w+\s*\{\s*([^,\s]+)\s*,", re.I | re.M)
BIBLIO_ENTRY = re.compile(r"<div\b[^>]*\brole=\"doc-biblioentry\"[^>]*>")
CITATION = re.compile(r"<span class=\"bibtex-citation\"[^>]*>(.*?)</span>", re.S)
HREF = re.compile(r"href=\"([^\"]+)\"")


def check_bibliography(html_dir: Path, pages: list[Path], files: list[str]) -> tuple[list[str], int]:
    """Problems with the bibliography and the citations, and the number of entries shown."""
    bib = ROOT / "book" / "references.bib"
    page = html_dir / "book" / "references.html"
    if "book/references" not in files or not bib.is_file():
        return [], 0
    if not page.is_file():
        return [], 0  # already reported as a missing page
    problems: list[str] = []
    keys = BIB_ENTRY.findall(bib.read_text("utf-8"))
    entries = BIBLIO_ENTRY.findall(page.read_text("utf-8", errors="replace"))
    ids = {m.group(1) for e in entries if (m := re.search(r'\bid="([^"]+)"', e))}
    if len(entries) != len(keys):
        problems.append(
            f"book/references.html lists {len(entries)} entries, book/references.bib has {len(keys)} "
            "(the {bibliography} directive should use :all:)"
        )
    for p in pages:
        rel = p.relative_to(html_dir).as_posix()
        text = p.read_text("utf-8", errors="replace")
        if re.search(r"\{cite:[a-z]+\}", text):
            problems.append(f"{rel}: an unrendered {{cite:...}} role")
        for citation in CITATION.findall(text):
            for href in HREF.findall(citation):
                target = local_target(p, href) if urlsplit(href).path else p.resolve()  # "#id": same page
                if target != page.resolve() or urlsplit(href).fragment not in ids:
                    problems.append(f"{rel}: citation link {href} does not reach a bibliography entry")
    return problems, len(entries)


DIAGRAM_CELL = re.compile(r'<div class="cell\b[^"]*\btag_diagram\b')


def diagram_cells(notebook: Path) -> int:
    """Code cells tagged `diagram` in a notebook (the book's conceptual pictures, drawn by bertlab.plots)."""
    if not notebook.is_file():
        return 0
    return sum(1 for c in json.loads(notebook.read_text("utf-8"))["cells"]
               if "diagram" in c.get("metadata", {}).get("tags", []))


def toc_files(toc: Path) -> list[str]:
    """The `root:` and `file:` entries of a _toc.yml, read without a YAML parser."""
    entries = re.findall(r"^\s*(?:-\s*)?(?:root|file)\s*:\s*['\"]?([^'\"#\s]+)", toc.read_text("utf-8"), re.M)
    return [re.sub(r"\.(md|ipynb)$", "", e) for e in entries]


def local_target(page: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    return (page.parent / path).resolve()


def figure_check(rel: str, n_images: int, text: str) -> tuple[str | None, str | None]:
    """(problem, note) for a notebook page with n_images figures: every chapter draws at least one.

    The exception: a chapter whose data set lies outside the repository (chapter 11: ChnSentiCorp)
    runs without it and says so in its skipped cells (DATA_ABSENT); its figures need that data, so
    the page passes with a note instead of a failure.
    """
    if n_images:
        return None, None
    if DATA_ABSENT in text:
        return None, f"{rel} draws no figure: its data set was absent when it ran"
    return f"{rel}: notebook page embeds no image (no output figure in _images/ or data: URI)", None


def main(html_dir: Path) -> int:
    problems: list[str] = []
    html_dir = html_dir.resolve()
    if not (html_dir / "index.html").is_file():
        print(f"check_site: FAILED: {html_dir}/index.html does not exist (was the book built?)")
        return 1

    files = toc_files(ROOT / "_toc.yml")
    notebooks = [f for f in files if (ROOT / f"{f}.ipynb").is_file()]
    for f in files:
        if not (html_dir / f"{f}.html").is_file():
            problems.append(f"missing page {f}.html for _toc.yml entry {f!r}")

    images_dir = (html_dir / "_images").resolve()
    mathjax_refs: set[str] = set()
    without_figures = 0  # chapter pages whose data set was absent (figure_check)
    diagrams = 0  # cells tagged diagram, as MyST-NB renders them (class tag_diagram)
    pages = sorted(html_dir.rglob("*.html"))
    for page in pages:
        rel = page.relative_to(html_dir).as_posix()
        text = page.read_text("utf-8", errors="replace")
        tags = Tags()
        tags.feed(text)
        if "fonts.googleapis" in text or "fonts.gstatic" in text:
            problems.append(f"{rel}: refers to Google Fonts")
        for src in tags.scripts:
            if EXTERNAL.match(src):
                problems.append(f"{rel}: external script {src}")
                continue
            if src.startswith("data:") or "{{" in src:  # "{{": a theme's Jinja template in _static/
                continue
            if not local_target(page, src).is_file():
                problems.append(f"{rel}: script {src} does not exist")
            if "mathjax" in src.lower():
                mathjax_refs.add(local_target(page, src).relative_to(html_dir).as_posix())
        for link_rel, href in tags.links:
            if EXTERNAL.match(href):
                problems.append(f"{rel}: external <link rel={link_rel!r}> {href}")
            elif "stylesheet" in link_rel and "{{" not in href and not local_target(page, href).is_file():
                problems.append(f"{rel}: stylesheet {href} does not exist")

        name = rel[: -len(".html")]
        if name in notebooks:
            good = [
                s for s in tags.images
                if s.startswith("data:image/")
                or (not EXTERNAL.match(s) and local_target(page, s).is_file()
                    and images_dir in local_target(page, s).parents)
            ]
            problem, note = figure_check(rel, len(good), text)
            if note:
                print(f"check_site: note: {note}")
                without_figures += 1
            if problem:
                problems.append(problem)
            expected = diagram_cells(ROOT / f"{name}.ipynb")
            shown = len(DIAGRAM_CELL.findall(text))
            diagrams += shown
            if shown != expected:
                problems.append(f"{rel}: {expected} cells tagged diagram in the notebook, {shown} on the page")
            if not any("colab.research.google.com" in h for h in tags.anchors):
                problems.append(f"{rel}: notebook page has no Colab launch link")

    for css in html_dir.rglob("*.css"):
        if "fonts.googleapis" in css.read_text("utf-8", errors="replace"):
            problems.append(f"{css.relative_to(html_dir)}: imports Google Fonts")

    if not mathjax_refs:
        problems.append("no page references MathJax (math would not render)")
    if not (html_dir / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir():
        problems.append("_static/mathjax/output/chtml/fonts/woff-v2 is missing (MathJax fonts)")

    bib_problems, n_entries = check_bibliography(html_dir, pages, files)
    problems += bib_problems

    if problems:
        print(f"check_site: FAILED: {len(problems)} problem(s) in {html_dir}")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(
        f"check_site: OK: {len(pages)} pages, {len(notebooks)} notebook page(s) with Colab links, "
        f"{len(notebooks) - without_figures} with figures"
        + (f" ({without_figures} without: data absent)" if without_figures else "") + ", "
        f"{diagrams} diagrams, "
        f"MathJax local ({', '.join(sorted(mathjax_refs))}), no external scripts/styles"
        + (f", bibliography of {n_entries} entries with every citation resolved" if n_entries else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build/html")))
