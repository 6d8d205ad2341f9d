"""Small things every other module shares: the user-facing error, atomic writes, the offline
switch, where an installed package keeps its files, and eval mode for a while.

This module imports nothing from bertlab, so any module may import it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TRUE_WORDS = ("1", "true", "yes", "on")


class BertlabError(ValueError):
    """Bad input from the user: a flag, a file, a row, a model folder.

    The `bertlab` command prints such an error as one line and exits with 2; any other exception
    is a bug and keeps its traceback. (A ValueError subclass, so `except ValueError` still works.)
    """


def option(default: Any = dataclasses.MISSING, help: str = "", *, group: str | None = None,
           choices: tuple[str, ...] | None = None, minimum: float | None = None, flag: str | None = None,
           positional: bool = False, nargs: str | None = None) -> Any:
    """A dataclass field that is also a command-line option. `bertlab.cli` builds each command's
    flags from these, so a default is written once, here, and the CLI and the Python API share it.

    help: the flag's help text (plain text, "%" allowed); group: the --help section it is listed in;
    flag: a flag name other than --field-name (a bool whose default is True becomes a flag that sets
    it False); positional/nargs: a positional argument. A field made with plain `field()` is not on
    the command line. `choices` and `minimum` are checked by `check_options`, for the command and
    the Python API alike.
    """
    meta = {"help": help, "group": group, "choices": choices, "minimum": minimum, "flag": flag,
            "positional": positional, "nargs": nargs}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(f: dataclasses.Field) -> str:
    """How a field is called on the command line: --max-seq-length, --C, ..."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_options(args: Any, error: type[BertlabError] = BertlabError) -> None:
    """Raise `error` naming the flag for the first `option` field of `args` (a dataclass) whose value
    is not one of its `choices` or is below its `minimum`; None means "not given" and passes."""
    for f in dataclasses.fields(args):
        meta, value = f.metadata, getattr(args, f.name)
        if "help" not in meta or value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if meta["choices"] and v not in meta["choices"]:
                raise error(f"{flag_name(f)} {v!r}: choose one of {', '.join(map(str, meta['choices']))}")
            if meta["minimum"] is not None and v < meta["minimum"]:
                raise error(f"{flag_name(f)} {v:g}: must be at least {meta['minimum']:g}")


def offline(datasets: bool = False) -> bool:
    """True when the Hugging Face Hub must not be contacted (HF_HUB_OFFLINE; with datasets=True,
    HF_DATASETS_OFFLINE too)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    return any(os.environ.get(n, "").strip().lower() in TRUE_WORDS for n in names)


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it; None if not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def temporary_name(path: Path, kind: str = "tmp") -> Path:
    """A fresh hidden name beside `path` for a file or folder still being written."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never a part.
    The file's mode follows the umask."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb") as f:  # "x": a new file, created with the umask's mode
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`atomic_write_bytes` for UTF-8 text with "\\n" line ends."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def quiet_logger(name: str = "bertlab", level: int = 40) -> Iterator[None]:
    """Show only records of `level` (default ERROR) and above from logger `name` in the `with` block."""
    import logging

    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Put a module in eval mode for the `with` block, then back to the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
