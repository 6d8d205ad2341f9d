"""Data files read into rows, with errors that name the file and the line.

`read_table(path)` reads a table, its format chosen by the extension (`SUFFIXES`):

- `.csv`: RFC 4180 (quoted fields may span lines); `.tsv`: GLUE style, one record per line, fields
  split on tabs, quotes are ordinary characters. Both start with a header line unless
  `header=False`: then the columns are the `names` given, else their 0-based numbers as strings
  ("0", "1", ...; the first record fixes how many);
- `.jsonl` / `.ndjson` / `.json`: one JSON object per line, or one JSON array of objects;
- `.parquet` / `.pq`: read with pyarrow.

Text is UTF-8, a byte-order mark allowed (`read_text`). Each row keeps an id naming the file and
the row: `train.tsv:17` (text formats: the physical line the record starts on, header = line 1,
without a header the first data line is line 1; a JSON array: the 1-based item) or
`train.parquet:17` (the 1-based data row). Every error is a `ClassificationDataError`, one line
naming the file and the line (or row) at fault.

Columns by number (`--text-column 1`): a flag value of digits only is a 0-based column number, and
a CSV or TSV file given numbers is read without a header row (as `cut -f` and pandas' `header=None`
read it). The flags of one command are all names or all numbers (`column_numbers`). JSON-lines and
Parquet files always name their columns: a number is then an error (unless a column is called
that). When a header looks like data (a field that is a number, or a sentence), the errors that ask
for a column also suggest the numbers (`headerless_hint`).

Why not pandas (3.1.1, measured): it names record 4 where a ragged row stands on line 6 (a quoted
field above spans lines), pads a short row with an empty field without a word, and gives bad UTF-8
or a broken JSON line as a byte position, not a line. It parses 200,000 CSV rows (20 MB) in 0.11 s
against 0.80 s here, but making row dicts of its frame takes it to 0.74 s; it is also only in the
`[book]` extra, and importing it costs 0.35 s.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..common import BertlabError

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
            ".parquet": "parquet", ".pq": "parquet"}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents in one field are fine


class ClassificationDataError(BertlabError):
    """Classification data that cannot be used; the message is one line naming file and row."""


@dataclass
class Row:
    where: str  # "line 17" or "row 17", for messages
    id: str  # "train.tsv:17"
    values: dict[str, Any]


def read_text(path: Path, error: type[Exception]) -> str:
    """A UTF-8 text file (a BOM is allowed). Raises `error` with one line naming the file, and
    the line for bytes that are not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            f"save the file as UTF-8"
        ) from None


def _read_delimited(path: Path, kind: str, header: bool, names: Sequence[str] | None) -> tuple[list[str], list[Row]]:
    text = read_text(path, ClassificationDataError)
    if kind == "tsv":
        # GLUE-style TSV: one record per line, fields split on tabs, quotes are ordinary characters.
        records = ((n, line.rstrip("\r").split("\t")) for n, line in enumerate(text.split("\n"), 1))
    else:
        records = _csv_records(path, text)
    columns: list[str] | None = list(names) if names else None
    shape = f" ({shown(columns)})" if columns else ""  # what a ragged-row error says the fields are
    rows: list[Row] = []
    for start, record in records:
        if not any(field.strip() for field in record):
            continue  # a blank line
        if columns is None and header:
            columns = [c.strip() for c in record]
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            if dupes:
                raise ClassificationDataError(f"{path}: line {start}: repeated column name(s) in the header: {', '.join(dupes)}")
            shape = f" ({shown(columns)})"
            continue
        if columns is None:  # no header and no names: the columns are numbered, as many as on this line
            columns = [str(i) for i in range(len(record))]
            shape = f" (as on line {start})"
        if len(record) != len(columns):
            raise ClassificationDataError(
                f"{path}: line {start}: expected {len(columns)} {kind.upper()} fields{shape}, found {len(record)}"
            )
        rows.append(Row(f"line {start}", f"{path.name}:{start}", dict(zip(columns, record))))
    if columns is None:
        raise ClassificationDataError(f"{path}: the file is empty")
    if not rows:
        raise ClassificationDataError(f"{path}: the file has a header but no data rows")
    return columns, rows


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(line on which the record starts, fields) of a CSV text; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            yield start, record
    except csv.Error as err:
        raise ClassificationDataError(f"{path}: line {line}: malformed CSV ({err})") from None


def _read_jsonl(path: Path) -> tuple[list[str], list[Row]]:
    text = read_text(path, ClassificationDataError)
    stripped = text.lstrip()
    columns: dict[str, None] = {}
    rows: list[Row] = []
    if stripped.startswith("["):  # one JSON array of objects
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ClassificationDataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise ClassificationDataError(f"{path}: row {n}: expected a JSON object, found {type(item).__name__}")
            columns.update(dict.fromkeys(item))
            rows.append(Row(f"row {n}", f"{path.name}:{n}", item))
        return list(columns), rows
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ClassificationDataError(f"{path}: line {n}: not valid JSON ({err.msg})") from None
        if not isinstance(item, dict):
            raise ClassificationDataError(f"{path}: line {n}: expected a JSON object, found {type(item).__name__}")
        columns.update(dict.fromkeys(item))
        rows.append(Row(f"line {n}", f"{path.name}:{n}", item))
    if not rows:
        raise ClassificationDataError(f"{path}: the file is empty")
    return list(columns), rows


def _read_parquet(path: Path) -> tuple[list[str], list[Row]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ClassificationDataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several kinds for a damaged file
        raise ClassificationDataError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    columns = list(table.column_names)
    rows = [Row(f"row {n}", f"{path.name}:{n}", item) for n, item in enumerate(table.to_pylist(), 1)]
    if not rows:
        raise ClassificationDataError(f"{path}: the file has no rows")
    return columns, rows


def read_table(path: str | Path, header: bool = True, names: Sequence[str] | None = None) -> tuple[list[str], list[Row]]:
    """(column names, rows) of a CSV, TSV, JSON-lines/JSON or Parquet file, chosen by extension.

    `header=False` (CSV and TSV; JSON and Parquet always name their columns): the first line is data,
    and the columns are `names`, or without them "0", "1", ... (see `is_delimited`)."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ClassificationDataError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; use {', '.join(sorted(SUFFIXES))}"
        )
    if not path.is_file():
        raise ClassificationDataError(f"{path}: no such file")
    if kind in ("csv", "tsv"):
        return _read_delimited(path, kind, header, names)
    if kind == "jsonl":
        return _read_jsonl(path)
    return _read_parquet(path)


# --- columns and values --------------------------------------------------------------------------


def is_delimited(path: Path) -> bool:
    """True for a CSV or TSV file: one that may come without a header row."""
    return SUFFIXES.get(Path(path).suffix.lower()) in ("csv", "tsv")


def is_column_number(given: str | None) -> bool:
    """True for a column flag's value that is a 0-based column number: digits only ("0", "12")."""
    return given is not None and given.isascii() and given.isdigit()


def column_numbers(path: Path, given: dict[str, str | None]) -> bool:
    """True when the column flags given ({flag: value}, None = not given) are numbers, False when they
    are names (or none is given); mixing the two is an error."""
    numbers = {flag: v for flag, v in given.items() if is_column_number(v)}
    names = {flag: v for flag, v in given.items() if v is not None and flag not in numbers}
    if numbers and names:
        (nflag, number), (name_flag, name) = next(iter(numbers.items())), next(iter(names.items()))
        raise ClassificationDataError(
            f"{path}: {nflag} {number} is a column number but {name_flag} {name!r} a name: give every column as a "
            f"name (a file with a header row) or every one as a 0-based number (a file without one)"
        )
    return bool(numbers)


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SENTENCE_END = tuple(".!?。！？…")


def _looks_like_data(field: str) -> bool:
    """A would-be header field that is more likely a value: a number, or a sentence."""
    field = field.strip()
    return bool(_NUMBER.match(field)) or len(field.split()) >= 5 or len(field) >= 30 or (
        len(field) > 1 and field.endswith(_SENTENCE_END)) or any(c in field for c in "。，！？")


def headerless_hint(path: Path, columns: Sequence[str], flags: Sequence[str]) -> str:
    """'; the file seems to have no header row: give column numbers, e.g. --label-column 0 --text-column 1'
    when `columns` were read from the first line of a CSV or TSV file and look like data; else ''.

    The example gives each of `flags` ("--text-column", "--label-column") a column: the text the
    longest field, the label a number among the others (else the shortest of them)."""
    if not is_delimited(path) or not columns or not any(_looks_like_data(c) for c in columns):
        return ""
    picked: dict[str, int] = {}
    free = list(range(len(columns)))
    if "--text-column" in flags:
        picked["--text-column"] = max(free, key=lambda i: len(columns[i]))
        free.remove(picked["--text-column"])
    if "--label-column" in flags and free:
        numbers = [i for i in free if _NUMBER.match(columns[i].strip())]
        picked["--label-column"] = (numbers or sorted(free, key=lambda i: len(columns[i])))[0]
    example = " ".join(f"{flag} {i}" for flag, i in sorted(picked.items(), key=lambda item: item[1]))
    return "; the file seems to have no header row: give column numbers" + (f", e.g. {example}" if example else "")


def shown(columns: Sequence[str], width: int = 40) -> str:
    """Column names for a message, each cut to `width` characters (a header that is really a review)."""
    return ", ".join(c if len(c) <= width else c[: width - 3] + "..." for c in columns)


def pick_column(path: Path, columns: list[str], given: str | None, candidates: Sequence[str], what: str, flag: str,
                *, numbered: bool = False, where: str = "line 1", hint: str = "") -> str:
    """The column `given` (which must exist), else the first of `candidates` found (any case).

    numbered: the columns are "0", "1", ... of a file read without a header row, whose first data
    line is `where` (named by an out-of-range number); hint: what `headerless_hint` said, added to
    the errors that ask for a column."""
    if numbered:
        if given is None:
            raise ClassificationDataError(
                f"{path}: cannot tell which column holds the {what}: the file is read without a header row (the "
                f"other columns were given by number), so give {flag} as a number too (0 to {len(columns) - 1})"
            )
        if given not in columns:
            raise ClassificationDataError(
                f"{path}: {where}: {flag} {given}: the file has {len(columns)} column{'s' * (len(columns) != 1)}"
                f" (numbers 0 to {len(columns) - 1})"
            )
        return given
    if given is not None:
        if given not in columns:
            if is_column_number(given) and not is_delimited(path):
                raise ClassificationDataError(
                    f"{path}: {flag} {given}: a column number is for a CSV or TSV file without a header row; this "
                    f"file names its columns, give one of: {shown(columns)}"
                )
            raise ClassificationDataError(f"{path}: no column {given!r} ({flag}); the columns are: {shown(columns)}{hint}")
        return given
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise ClassificationDataError(
        f"{path}: cannot tell which column holds the {what}; give {flag} (the columns are: {shown(columns)}){hint}"
    )


def text_value(path: Path, row: Row, column: str) -> str:
    """The row's text in `column`: a string that is not blank."""
    value = row.values.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ClassificationDataError(f"{path}: {row.where}: empty text in column {column!r}")
    if not isinstance(value, str):
        raise ClassificationDataError(
            f"{path}: {row.where}: column {column!r} holds {type(value).__name__} {value!r}, not text"
        )
    if not value.strip():
        raise ClassificationDataError(f"{path}: {row.where}: empty text in column {column!r}")
    if "\x00" in value:  # a binary file read as text, or a broken export: never a real review
        raise ClassificationDataError(f"{path}: {row.where}: a NUL byte in the text of column {column!r}")
    return value


_INT = re.compile(r"^[+-]?\d+$")


def label_value(path: Path, row: Row, column: str) -> str | int:
    """A label as an int (integer values, also "3" in a CSV) or a stripped string."""
    value = row.values.get(column)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            value = None
        elif value.is_integer():
            return int(value)
        else:
            raise ClassificationDataError(
                f"{path}: {row.where}: label {value!r} in column {column!r} is not a class (a whole number or a name)"
            )
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ClassificationDataError(f"{path}: {row.where}: empty label in column {column!r}")
    if not isinstance(value, str):
        raise ClassificationDataError(f"{path}: {row.where}: label {value!r} in column {column!r} is not a class")
    value = value.strip()
    return int(value) if _INT.match(value) else value
