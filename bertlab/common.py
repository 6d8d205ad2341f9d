"""Small things every other module shares: the user-facing error, atomic writes, the offline
switch, where an installed package keeps its files, and eval mode for a while.

This module imports nothing from bertlab, so any module may import it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
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


# What temporary_name makes (".NAME.tmp-PID-HEX", ".NAME.old-PID-HEX"), and what bertlab 0.1 made
# for checkpoints (".NAME.PID.tmp"): the only names remove_orphans deletes.
_ORPHAN = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]{8}$|^\..+\.\d+\.tmp$")


def remove_orphans(folder: str | Path) -> list[str]:
    """Delete the temporary files and folders that a killed bertlab command left in `folder` (names
    made by `temporary_name` only; nothing else is touched). Call it while holding `output_lock`."""
    folder = Path(folder)
    removed = []
    for item in sorted(folder.iterdir()) if folder.is_dir() else ():
        if _ORPHAN.match(item.name) and not item.is_symlink():
            shutil.rmtree(item) if item.is_dir() else item.unlink()
            removed.append(item.name)
    return removed


@contextmanager
def output_lock(folder: str | Path, flag: str = "--output") -> Iterator[None]:
    """Hold `folder` (created if missing) for this process: another bertlab command that asks for it
    meanwhile gets one line naming `flag`. The lock is an flock on the folder itself, which the
    system drops when the process ends, killed or not, so it never stays stuck and leaves no file.
    (Where flock does not exist, on Windows, there is no lock.)"""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BertlabError(f"{flag} {folder}: in use by another bertlab command that is still running; wait "
                               "for it to end or choose another folder") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def claimed_run_folder(out: str | Path, resume: bool, main: bool = True) -> Iterator[list[str]]:
    """A training run's folder, held with `output_lock` for the `with` block: checked again to be
    empty (unless resuming), its orphaned temporary files removed (their names are yielded).
    Only the main process (rank 0) claims it."""
    if not main:
        yield []
        return
    out = Path(out)
    with output_lock(out):
        if not resume and any(out.iterdir()):
            raise BertlabError(f"--output {out}: folder exists and is not empty (use --resume to continue it)")
        yield remove_orphans(out) + remove_orphans(out / "checkpoints")


def check_writable(path: str | Path, flag: str = "--output") -> None:
    """An error naming `flag` unless `path` can be created or written: checked before any work."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = f" ({existing} is not a writable folder)" if existing is not None and existing != path else ""
        raise BertlabError(f"{flag} {path}: cannot be written here{where}")


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
