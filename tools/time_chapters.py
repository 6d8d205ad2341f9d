"""Execute every chapter notebook once, time it, and write the landing page's time table.

    python tools/time_chapters.py                      # all notebooks in _toc.yml order
    python tools/time_chapters.py --device-label gpu   # on a GPU machine: fills the GPU column
    python tools/time_chapters.py --from-junit _build/nbval-junit.xml
                                   # the times of `make test`'s nbval run (each notebook executed once)

Each notebook is executed from a copy (the stored notebook is not changed) in the notebooks/
folder, with the kernel of the running environment. The times go to
results/book/chapter_times_<label>.json (with the machine, versions and date), and the table
between the markers in book/intro.md is rewritten from whatever time files exist, so a column
is filled only by a measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- chapter-times:start -->", "<!-- chapter-times:end -->"


def chapters() -> list[Path]:
    """Notebooks in table-of-contents order."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    names = re.findall(r"file:\s*(notebooks/\S+)", toc)
    return [ROOT / f"{n}.ipynb" for n in names if (ROOT / f"{n}.ipynb").is_file()]


def title(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return nb.stem


def execute(nb: Path, timeout: int) -> float:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(nb, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(nb.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def times_from_junit(path: Path) -> dict[str, float]:
    """Seconds per notebook from the JUnit XML of an nbval run (the sum of its cells' times)."""
    import xml.etree.ElementTree as ET

    seconds: dict[str, float] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        match = re.search(r"([\w-]+)\.ipynb", case.get("classname", "") + " " + case.get("file", ""))
        if match:
            key = f"notebooks/{match.group(1)}"
            seconds[key] = seconds.get(key, 0.0) + float(case.get("time", 0))
    return {k: round(v, 1) for k, v in seconds.items()}


def machine(label: str) -> str:
    if label == "gpu":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU found"
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "not measured yet"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def write_table() -> str:
    runs = {}
    for label in ("cpu", "gpu"):
        path = ROOT / "results" / "book" / f"chapter_times_{label}.json"
        if path.is_file():
            runs[label] = json.loads(path.read_text(encoding="utf-8"))
    lines = [START, "", "| chapter | CPU | GPU |", "| --- | --- | --- |"]
    for nb in chapters():
        rel = f"notebooks/{nb.stem}"
        cells = [fmt(runs.get(label, {}).get("seconds", {}).get(rel)) for label in ("cpu", "gpu")]
        lines.append(f"| {{doc}}`{title(nb)} <../{rel}>` | {cells[0]} | {cells[1]} |")
    lines.append("")
    for label, run in runs.items():
        lines.append(f"{label.upper()} times: {run['machine']}, {run['date']}, run size `{run['size']}`, "
                     f"measured by the {run.get('how', 'tools/time_chapters.py')}; in all "
                     f"{fmt(run['total_seconds'])}.")
        lines.append("")
    if "gpu" not in runs:
        lines += ["No GPU run of the chapters has been recorded yet.", ""]
    lines.append(END)
    intro = ROOT / "book" / "intro.md"
    text = intro.read_text(encoding="utf-8")
    if START not in text:
        raise SystemExit(f"{intro}: no {START} marker")
    new = text[: text.index(START)] + "\n".join(lines) + text[text.index(END) + len(END):]
    intro.write_text(new, encoding="utf-8")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device-label", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p.add_argument("--only-table", action="store_true", help="rewrite the table from the stored times")
    p.add_argument("--from-junit", type=Path, help="take the times from this nbval JUnit XML instead of executing")
    a = p.parse_args()
    if not a.only_table:
        import torch

        if a.from_junit:
            seconds = times_from_junit(a.from_junit)
            how = f"nbval run of `make test` ({a.from_junit.name})"
        else:
            seconds = {}
            for nb in chapters():
                seconds[f"notebooks/{nb.stem}"] = round(execute(nb, a.timeout), 1)
                print(f"{nb.name:40s} {fmt(seconds[f'notebooks/{nb.stem}'])}", flush=True)
            how = "tools/time_chapters.py"
        out = ROOT / "results" / "book" / f"chapter_times_{a.device_label}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {"date": dt.date.today().isoformat(), "machine": machine(a.device_label),
                  "size": "full" if torch.cuda.is_available() else "small", "torch": torch.__version__,
                  "python": platform.python_version(), "how": how, "seconds": seconds,
                  "total_seconds": round(sum(seconds.values()), 1)}
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(write_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
