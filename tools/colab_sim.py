"""Run each chapter as a reader on Colab would: `make test-colab`.

For every notebook this script simulates a fresh Colab runtime:

* a Python environment with only what a Colab runtime preinstalls (COLAB_PACKAGES below: torch,
  transformers 4.x, numpy, pandas, matplotlib, scikit-learn, tqdm, ipykernel) and nothing of
  requirements.txt. It is built once (the *base*); each notebook then gets a fresh, empty child
  environment that sees the base's packages through a `.pth` file, so that what one chapter's first
  cell installs is gone for the next chapter, as on a new runtime;
* the notebook copied alone into an empty folder (no repository beside it, no data directory);
* the repository URL of its first cell pointed at a one-commit git snapshot of this checkout's
  working tree (there is no network to GitHub), as a `file://` URL;
* the notebook executed top to bottom by a kernel running in the child environment; any error fails.

It prints one line per chapter (seconds, and what the first cell installed) and exits 1 if any
chapter failed, after writing the failing notebook (with its outputs) under the work folder.

Usage: python tools/colab_sim.py [--work _build/colab] [--timeout 900] [notebooks ...]
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a Colab runtime has preinstalled, as far as the book is concerned (versions of the kind Colab
# shipped in 2025-2026; transformers stays on 4.x there). torch is the CPU build on this machine.
COLAB_PACKAGES = [
    "torch==2.13.0",
    "transformers==4.57.6",
    "numpy==2.0.2",
    "pandas==2.2.2",
    "matplotlib==3.10.0",
    "scikit-learn==1.6.1",
    "tqdm==4.67.1",
    "ipykernel==6.17.1",
]

COLAB_PIP = "pip==24.1.2"

# The first cell's repository line, e.g.  REPO = "https://github.com/OWNER/NAME"  # ...
REPO_LINE = re.compile(r'^(REPO = )"[^"]*"', re.MULTILINE)

# Settings of this machine or of CI that a Colab runtime does not have.
DROPPED_ENV = ("BERTLAB_DATA_DIR", "BERTLAB_BOOK_SIZE", "BERTLAB_MAX_STEPS", "VIRTUAL_ENV", "PYTHONPATH",
               "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "IPYTHONDIR", "MPLBACKEND")


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def pip_quiet(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"colab_sim: error: {' '.join(cmd[1:])} failed (exit {proc.returncode})")


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


MARK = ".made-by-colab-sim"


def fresh_dir(path: Path) -> Path:
    """An empty folder at path; an old one is deleted only if this script made it (it holds MARK)."""
    if path.exists():
        if not (path / MARK).is_file():
            raise SystemExit(f"colab_sim: error: {path} exists and was not made by colab_sim; not deleting it "
                             "(choose another --work folder)")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARK).touch()
    return path


def make_base(work: Path) -> Path:
    """The Colab-like environment, built once and reused while COLAB_PACKAGES stay the same."""
    base = work / "base"
    stamp = base / ".colab-packages"
    want = "\n".join([COLAB_PIP, *COLAB_PACKAGES]) + "\n"
    if stamp.is_file() and stamp.read_text() == want:
        return base
    fresh_dir(base)
    log(f"== colab: creating the Colab-like environment {base.relative_to(ROOT) if base.is_relative_to(ROOT) else base}")
    run([sys.executable if not os.environ.get("COLAB_SIM_PYTHON") else os.environ["COLAB_SIM_PYTHON"],
         "-m", "venv", str(base)])
    pip_quiet(base / "bin" / "python", COLAB_PIP)  # Colab's pip; a venv's own may be too old for URLs
    pip_quiet(base / "bin" / "python", *COLAB_PACKAGES)
    stamp.write_text(want)
    return base


def make_snapshot(work: Path) -> Path:
    """A one-commit git repository holding this checkout's working tree (tracked files, as they are now)."""
    snap = fresh_dir(work / "repo")
    # `git stash create` records the working tree's tracked changes as a commit without touching the
    # checkout; it prints nothing when the tree is clean, and then HEAD is the tree.
    tree = subprocess.run(["git", "stash", "create"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip() or "HEAD"
    archive = subprocess.run(["git", "archive", "--format=tar", tree], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(snap, filter="data")
    git = ["git", "-C", str(snap), "-c", "user.name=colab-sim", "-c", "user.email=colab-sim@localhost"]
    run([*git, "init", "-q", "-b", "main"])
    (snap / ".git" / "info").mkdir(exist_ok=True)
    (snap / ".git" / "info" / "exclude").write_text(MARK + "\n")
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "snapshot of the working tree for make test-colab"])
    return snap


def make_child(work: Path, name: str, base: Path) -> Path:
    """A fresh environment that sees the base's packages; what pip installs lands in the child only."""
    env_dir = fresh_dir(work / "envs" / name)
    run([str(base / "bin" / "python"), "-m", "venv", "--without-pip", str(env_dir)])
    child_python = env_dir / "bin" / "python"
    # The base's site-packages go after the child's own on sys.path, so the child's pip installs
    # (and upgrades) shadow the base's packages without touching them. pip itself comes from the base.
    (site_packages(child_python) / "colab_base.pth").write_text(str(site_packages(base / "bin" / "python")) + "\n")
    return child_python


def kernel_env(child_python: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PATH"] = f"{child_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)  # pip's and matplotlib's caches start empty, as on a new runtime
    env["PIP_CACHE_DIR"] = str(home / ".cache" / "pip")
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def installed(child_python: Path, base: Path) -> list[str]:
    """Distributions pip put into the child (what the chapter's first cell installed)."""
    child_site = site_packages(child_python)
    names = sorted(p.name.split("-")[0] for p in child_site.glob("*.dist-info"))
    return names


def run_notebook(path: Path, work: Path, base: Path, repo_url: str, timeout: int) -> tuple[bool, float, str]:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    name = path.stem
    child_python = make_child(work, name, base)
    folder = fresh_dir(work / "runs" / name)
    home = folder / "home"
    content = folder / "content"  # Colab's working folder: empty but for the notebook
    home.mkdir(parents=True)
    content.mkdir()
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    if not REPO_LINE.search(first.source):
        return False, 0.0, "its first code cell has no REPO = \"...\" line"
    first.source = REPO_LINE.sub(lambda m: f'{m.group(1)}"{repo_url}"', first.source, count=1)
    nb_path = content / path.name
    nbformat.write(nb, nb_path)

    # A kernel spec of the child's Python, in a folder of its own (the machine's kernels are not seen).
    spec_dir = folder / "kernels" / "colab"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(child_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Colab-like)", "language": "python"}))
    km = KernelManager(kernel_name="colab",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]))
    client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False, record_timing=False,
                            resources={"metadata": {"path": str(content)}})
    start = time.monotonic()
    ok, why = True, ""
    try:
        client.execute(env=kernel_env(child_python, home), cwd=str(content))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        ok = False
        text = str(exc).strip().splitlines()
        why = next((line for line in reversed(text) if line.strip()), type(exc).__name__)
    finally:  # nbclient leaves a kernel it did not start running: stop it
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.monotonic() - start
    nbformat.write(nb, folder / f"{name}.executed.ipynb")
    if ok:
        why = "installed: " + (", ".join(installed(child_python, base)) or "nothing")
    return ok, seconds, why


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    ap.add_argument("--work", type=Path, default=ROOT / "_build" / "colab", help="work folder (default _build/colab)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    lock = open(work / ".lock", "w")
    try:  # two runs in one work folder would delete each other's environments
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"colab_sim: error: another colab_sim run is using {work}", file=sys.stderr)
        return 2

    t0 = time.monotonic()
    base = make_base(work)
    snap = make_snapshot(work)
    repo_url = snap.as_uri()
    log(f"== colab: {len(notebooks)} notebooks, each in a fresh environment on top of "
        f"{', '.join(COLAB_PACKAGES)}; repository {repo_url}")
    failed = []
    for path in notebooks:
        ok, seconds, what = run_notebook(path.resolve(), work, base, repo_url, args.timeout)
        log(f"{'ok    ' if ok else 'FAILED'} {path.name:40s} {seconds:6.0f} s  {what}")
        if not ok:
            failed.append(path.name)
    log(f"== colab: {len(notebooks) - len(failed)} of {len(notebooks)} chapters ran top to bottom "
        f"in {time.monotonic() - t0:.0f} s")
    if failed:
        log(f"== colab: failed: {', '.join(failed)} (executed copies under {work / 'runs'})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
