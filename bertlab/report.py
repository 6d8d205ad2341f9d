"""What `bertlab evaluate` and `bertlab baseline` write, and how an output folder is replaced.

An output folder is written whole or not at all: `atomic_folder` yields a temporary folder
beside it, which replaces the old one only when everything in it has been written. A folder is
replaced only if it is empty or its args.json says the same command wrote it (`check_output`):
no command deletes what it did not write.

`write_report` writes the files of one evaluation (see `bertlab.evaluate` for the list).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

from .common import BertlabError, check_writable, temporary_name


class OutputError(BertlabError):
    """An output folder that may not be written or replaced."""


def slug(name: str) -> str:
    """A folder-name-safe version of a data set name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


# The key of args.json that says which command wrote a folder. A file name is not proof enough that a
# folder may be replaced: a pretraining run holds a summary.json too, and a user's folder anything.
COMMAND_KEY = "bertlab_command"


def args_json(command: str, args: Any) -> str:
    """args.json of an output folder: the arguments, and the command that wrote the folder."""
    return json.dumps({COMMAND_KEY: command, **asdict(args)}, indent=2) + "\n"


def written_by(out: Path, command: str) -> bool:
    """True if `out` holds an earlier output of `bertlab <command>` (its args.json says so)."""
    try:
        return json.loads((out / "args.json").read_text(encoding="utf-8")).get(COMMAND_KEY) == command
    except (OSError, ValueError, AttributeError):
        return False


def check_output(out: Path, command: str, flag: str = "--output") -> None:
    """`out` may be created, or replaced if it is empty or an earlier output of the same command."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not written_by(out, command):
        raise OutputError(f"{flag} {out}: folder exists, is not empty and is not an earlier output of "
                            f"bertlab {command}; nothing was changed, choose another folder")
    check_writable(out, flag)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def remove_stale_temporaries(out: Path) -> list[str]:
    """Delete what a killed `atomic_folder(out)` left beside `out`: only the hidden names it makes
    for `out` (".NAME.tmp-PID-HEX", ".NAME.old-PID-HEX"), and only when process PID is gone, so a
    command still writing its own is left alone."""
    out = Path(out)
    stale = re.compile(rf"^\.{re.escape(out.name)}\.(?:tmp|old)-(\d+)-[0-9a-f]{{8}}$")
    removed = []
    for item in sorted(out.parent.iterdir()) if out.parent.is_dir() else ():
        m = stale.match(item.name)
        if m and not item.is_symlink() and not _alive(int(m.group(1))):
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
            removed.append(item.name)
    return removed


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on failure it is removed.
    What an earlier, killed call left beside `out` is removed first (`remove_stale_temporaries`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = temporary_name(out)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = temporary_name(out, "old")
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            if old is not None:
                old.rename(out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _jsonl(path: Path, records) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_report(folder: str | Path, metrics: dict[str, Any], y_true: Sequence[int], probs, label_names: Sequence[str],
                 ids: Sequence[str], texts: Sequence[str], pairs: Sequence[str] | None = None,
                 title: str = "") -> None:
    """metrics.json, confusion matrix (JSON, PNG), reliability diagram, per-class F1, predictions and errors."""
    import numpy as np

    from .metrics import confident_errors
    from .plots import save_confusion_matrix, save_per_class_f1, save_reliability_diagram

    folder = Path(folder)
    p = np.asarray(probs.detach().cpu().double().numpy() if hasattr(probs, "detach") else probs, dtype=np.float64)
    names = list(label_names)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "confusion_matrix.json").write_text(
        json.dumps({"labels": names, "rows": "true label", "columns": "predicted label",
                    "matrix": metrics["confusion_matrix"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    prefix = f"{title}: " if title else ""
    save_confusion_matrix(metrics["confusion_matrix"], names, folder / "confusion_matrix.png",
                          title=f"{prefix}confusion matrix")
    save_confusion_matrix(metrics["confusion_matrix"], names, folder / "confusion_matrix_normalized.png",
                          normalize=True, title=f"{prefix}confusion matrix (row-normalised)")
    save_reliability_diagram(metrics["calibration"], folder / "reliability_diagram.png")
    save_per_class_f1(metrics, folder / "per_class_f1.png", title=f"{prefix}F1 per class")
    pred = p.argmax(axis=1)
    _jsonl(folder / "predictions.jsonl", (
        {"id": ids[i], "label": names[int(y_true[i])], "predicted": names[int(pred[i])],
         "probabilities": {n: round(float(v), 6) for n, v in zip(names, p[i])}}
        for i in range(len(ids))))
    _jsonl(folder / "errors.jsonl", confident_errors(y_true, p, names, texts, ids, pairs, top_k=None))
