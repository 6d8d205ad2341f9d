"""Baselines a fine-tuned BERT has to beat: the majority class, and TF-IDF + logistic regression.

`run_baseline(BaselineArgs(...))` is what `bertlab baseline` runs. Both baselines are fitted on the
training split and evaluated on `split` with the same metrics and files as `bertlab evaluate`:

    OUTPUT/majority/metrics.json ...   predicts the most frequent training class for every text, with
                                       the training class frequencies as its probabilities
    OUTPUT/tfidf_lr/metrics.json ...   TF-IDF features + logistic regression (scikit-learn)
    OUTPUT/summary.json                both baselines' headline numbers and the chosen settings

TF-IDF + logistic regression, the recipe:

- features: `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)` on words, or
  `TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1)` on characters
  for Chinese, Japanese or Korean text (no spaces between words). `analyzer="auto"` picks characters
  when at least 30% of the letters of the training texts are CJK characters. A text pair is joined
  into one text (first, a space, second).
- classifier: `LogisticRegression(C, max_iter=1000)` (L2, lbfgs; multinomial for more than two
  classes), fitted on the training split only.
- C: each value of the grid 0.25, 0.5, 1, 2, 4, 8, 16 is fitted and scored on the validation split;
  the most accurate one is kept (the smaller C on a tie). The test split is never looked at.
  (Evaluating `--split validation` is then optimistic: C was chosen on it.)

Reference points (scikit-learn 1.9, this recipe): SST-2 test accuracy 0.819 (C = 8);
ChnSentiCorp test (its dev file) accuracy 0.912 (C = 16); the project's reference points are
0.815 and 0.913.

scikit-learn is imported inside the functions, so `import bertlab` does not need it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .common import BertlabError, check_options, option
from .data.classification import ClassificationData, ClassificationSplit, load_test_file
from .evaluate import ReportArgs, map_labels, row_place
from .report import args_json, atomic_folder, check_output, slug, write_report

DEFAULT_C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ANALYZERS = ("auto", "word", "char")
CJK_THRESHOLD = 0.3


class BaselineError(BertlabError):
    """Arguments or inputs that cannot make a baseline run."""


@dataclass(kw_only=True)
class BaselineArgs(ReportArgs):
    output: str | None = option(None, "folder to write (default: runs/baseline-DATA-SPLIT); an earlier baseline run "
                                "there is replaced", group="metrics and output")
    test_data: str | None = option(None, "a test file, evaluated whole, instead of --split (its labels are matched "
                                   "by name to the training data's): the file you give `bertlab evaluate`",
                                   group="data")
    analyzer: str = option("auto", "word 1-2-grams or character 1-3-grams; auto: characters when the training "
                           "texts are mostly Chinese/Japanese/Korean script", group="TF-IDF + logistic regression",
                           choices=ANALYZERS)
    c_grid: list[float] | None = option(None, "inverse regularisation strength(s); more than one: the one with the "
                                        "best validation accuracy (default grid 0.25 0.5 1 2 4 8 16)",
                                        group="TF-IDF + logistic regression", flag="--C")
    min_df: int = option(1, "drop n-grams found in fewer training texts", group="TF-IDF + logistic regression", minimum=1)
    max_features: int | None = option(None, "keep only the most frequent n-grams",
                                      group="TF-IDF + logistic regression", minimum=1)

    def validate(self) -> None:
        check_options(self, BaselineError)
        for c in self.c_grid or ():
            if not c > 0:
                raise BaselineError(f"--C {c:g}: must be positive")


# --------------------------------------------------------------------------- pieces

def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2EBEF or 0xF900 <= o <= 0xFAFF
            or 0x3040 <= o <= 0x30FF or 0xAC00 <= o <= 0xD7AF)  # Han, Hiragana/Katakana, Hangul


def cjk_share(texts: Sequence[str], max_texts: int = 2000) -> float:
    """Share of CJK characters among the letters of (an evenly spaced sample of) the texts."""
    step = max(1, len(texts) // max_texts)
    letters = cjk = 0
    for text in texts[::step]:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += _is_cjk(ch)
    return cjk / letters if letters else 0.0


def choose_analyzer(texts: Sequence[str], analyzer: str = "auto") -> str:
    """'word' or 'char': as given, or by the script of the texts for 'auto'."""
    if analyzer != "auto":
        return analyzer
    return "char" if cjk_share(texts) >= CJK_THRESHOLD else "word"


def make_vectorizer(analyzer: str, min_df: int = 1, max_features: int | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer == "char":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=min_df,
                               max_features=max_features)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df, max_features=max_features)


def joined(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    return list(texts) if pairs is None else [f"{a} {b}" for a, b in zip(texts, pairs)]


def majority_proba(train_labels: Sequence[int], n: int, num_labels: int) -> np.ndarray:
    """(n, K): the training class frequencies for every example; its arg-max is the majority class."""
    prior = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_labels) / len(train_labels)
    return np.tile(prior, (n, 1))


class TfidfLogReg:
    """TF-IDF features and a logistic regression, C chosen on validation data."""

    def __init__(self, analyzer: str = "word", c_grid: Sequence[float] = DEFAULT_C_GRID, min_df: int = 1,
                 max_features: int | None = None):
        self.analyzer, self.c_grid, self.min_df, self.max_features = analyzer, sorted(c_grid), min_df, max_features
        self.vectorizer = self.classifier = None
        self.C: float | None = None
        self.validation_accuracy: dict[str, float] = {}
        self.num_labels = 0

    def fit(self, texts: Sequence[str], labels: Sequence[int], num_labels: int,
            val_texts: Sequence[str] | None = None, val_labels: Sequence[int] | None = None,
            log: Callable[[str], None] = lambda msg: None) -> "TfidfLogReg":
        from sklearn.linear_model import LogisticRegression

        self.num_labels = num_labels
        self.vectorizer = make_vectorizer(self.analyzer, self.min_df, self.max_features)
        x = self.vectorizer.fit_transform(texts)
        y = np.asarray(labels)
        x_val = self.vectorizer.transform(val_texts) if val_texts is not None and len(val_texts) else None
        best = None
        for c in self.c_grid:
            clf = LogisticRegression(C=c, max_iter=1000, random_state=0).fit(x, y)
            if x_val is None:  # nothing to choose on: the first C of the grid
                self.classifier, self.C = clf, c
                break
            acc = float(np.mean(clf.predict(x_val) == np.asarray(val_labels)))
            self.validation_accuracy[str(c)] = acc
            log(f"  C = {c:g}: validation accuracy {acc:.4f}")
            if best is None or acc > best:
                best, self.classifier, self.C = acc, clf, c
        return self

    @property
    def num_features(self) -> int:
        return len(self.vectorizer.vocabulary_)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, K) probabilities; classes absent from the training labels get 0."""
        p = self.classifier.predict_proba(self.vectorizer.transform(texts))
        out = np.zeros((p.shape[0], self.num_labels))
        out[:, self.classifier.classes_] = p
        return out


# --------------------------------------------------------------------------- the run

def test_split(args: BaselineArgs, data: ClassificationData) -> ClassificationSplit:
    """--test-data read whole, its labels matched by name onto the training data's."""
    test = load_test_file(args.test_data, args.data_dir, args.text_column, args.text_pair_column, args.label_column)
    split = test.splits["test"]
    labels = map_labels(split.labels, test.label_names, data.label_names, split.ids,
                        where=lambda row_id: row_place(args.test_data, args.data_dir, row_id),
                        model=f"the training data {data.name}")
    return ClassificationSplit(split.texts, split.pairs, labels, split.ids)


def run_baseline(args: BaselineArgs, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit and evaluate both baselines, write OUTPUT; returns summary.json's content."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise BaselineError("the baselines need scikit-learn (pip install scikit-learn)") from None
    from .metrics import classification_metrics

    args.validate()
    if args.output is not None:
        check_output(Path(args.output), "baseline")
    data = args.load_data(args.seed)
    split = test_split(args, data) if args.test_data else args.split_of(data)
    train, val = data.splits["train"], data.splits.get("validation")
    out = Path(args.output) if args.output is not None else Path("runs") / f"baseline-{slug(data.name)}-{args.split}"
    check_output(out, "baseline")
    names, k = data.label_names, len(data.label_names)
    log(f"data: {data.name}, {k} classes; train {len(train):,}, validation {len(val) if val else 0:,}, "
        f"{args.split} {len(split):,}")

    def evaluate(model_name: str, probs: np.ndarray, settings: dict[str, Any], seconds: float) -> dict[str, Any]:
        m = classification_metrics(split.labels, probs, names, texts=split.texts, ids=split.ids, pairs=split.pairs,
                                   bootstrap=args.bootstrap, seed=args.bootstrap_seed, top_k=args.top_errors)
        return {"model": model_name, "kind": "baseline", "data": data.name, "split": args.split,
                "settings": settings, "fit_seconds": round(seconds, 2), **m}

    results: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    started = time.perf_counter()
    probs = majority_proba(train.labels, len(split), k)
    majority = names[int(probs[0].argmax())]
    results["majority"] = (evaluate("majority", probs, {"predicts": majority}, time.perf_counter() - started), probs)
    log(f"majority: always {majority!r}, {args.split} accuracy {results['majority'][0]['accuracy']:.4f}")

    analyzer = choose_analyzer(train.texts, args.analyzer)
    grid = list(args.c_grid) if args.c_grid else list(DEFAULT_C_GRID)
    ngrams = "character 1-3" if analyzer == "char" else "word 1-2"
    log(f"tfidf_lr: {ngrams}-grams, C from {', '.join(f'{c:g}' for c in grid)}")
    started = time.perf_counter()
    model = TfidfLogReg(analyzer, grid, args.min_df, args.max_features).fit(
        joined(train.texts, train.pairs), train.labels, k,
        joined(val.texts, val.pairs) if val is not None and len(grid) > 1 else None,
        val.labels if val is not None else None, log)
    probs = model.predict_proba(joined(split.texts, split.pairs))
    settings = {"analyzer": analyzer, "ngram_range": [1, 3] if analyzer == "char" else [1, 2], "sublinear_tf": True,
                "min_df": args.min_df, "max_features": args.max_features, "features": model.num_features,
                "C": model.C, "C_grid": grid, "C_chosen_on": "validation" if model.validation_accuracy else None,
                "validation_accuracy": model.validation_accuracy, "max_iter": 1000}
    results["tfidf_lr"] = (evaluate("tfidf_lr", probs, settings, time.perf_counter() - started), probs)
    log(f"tfidf_lr: C = {model.C:g} ({model.num_features:,} features), {args.split} accuracy "
        f"{results['tfidf_lr'][0]['accuracy']:.4f}")

    summary: dict[str, Any] = {"data": data.name, "split": args.split, "examples": len(split), "baselines": {}}
    for name, (m, _) in results.items():
        ci = m.get("intervals") or {}
        summary["baselines"][name] = {"accuracy": m["accuracy"], "accuracy_ci": ci.get("accuracy"),
                                      "macro_f1": m["macro_f1"], "macro_f1_ci": ci.get("macro_f1"),
                                      "roc_auc": m["roc_auc"], "ece": m["ece"], "settings": m["settings"]}
    check_output(out, "baseline")  # again: the folder may have changed while the baselines were fitted
    with atomic_folder(out) as tmp:
        for name, (m, probs) in results.items():
            (tmp / name).mkdir()
            write_report(tmp / name, m, split.labels, probs, names, split.ids, split.texts, split.pairs,
                         title=f"{name}, {data.name} {args.split}")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "args.json").write_text(args_json("baseline", args), encoding="utf-8")
    summary["output"] = str(out)
    return summary


def report_lines(summary: dict[str, Any], args: BaselineArgs) -> list[str]:
    """What `bertlab baseline` prints at the end."""
    lines = []
    for name, row in summary["baselines"].items():
        ci = row.get("accuracy_ci")
        shown = f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
        lines.append(f"{name:>9}: accuracy {row['accuracy']:.4f}{shown}, macro-F1 {row['macro_f1']:.4f}")
    return lines + [f"one folder per baseline (metrics.json, figures, predictions) and summary.json in "
                    f"{summary['output']}"]
