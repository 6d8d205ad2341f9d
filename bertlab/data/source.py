"""Which classification data a command reads, and how: the data flags that `bertlab finetune`,
`evaluate` and `baseline` share, declared once."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import option
from .classification import ClassificationData, load_classification


@dataclass(kw_only=True)
class DataArgs:
    data: str = option("rotten_tomatoes", "rotten_tomatoes (embedded), sst2, chnsenticorp, a CSV/TSV/JSON-lines/"
                       "Parquet file, or a folder of train/validation (or dev)/test files", group="data")
    data_dir: str | None = option(None, "folder holding sst2/ and chnsenticorp/ (default: $BERTLAB_DATA_DIR)",
                                  group="data")
    text_column: str | None = option(None, "column of the text: a name, or a 0-based number for a CSV/TSV file "
                                     "without a header row (give every column flag as a number then, and the file's "
                                     "first line is data) (default: text, sentence, review, content, ...)",
                                     group="data")
    text_pair_column: str | None = option(None, "column of a second text, for sentence-pair tasks: a name, or a "
                                          "0-based number for a file without a header row", group="data")
    label_column: str | None = option(None, "column of the label: a name, or a 0-based number for a file without a "
                                      "header row (default: label, labels, category, class, sentiment, ...)",
                                      group="data")
    validation_split: float = option(0.1, "fraction of train held out (seeded, stratified) when the data has no "
                                     "validation file; when evaluating, use the fine-tuning run's value",
                                     group="data")

    def load_data(self, seed: int) -> ClassificationData:
        """The data set these flags name; `seed` chooses the validation slice when one is carved."""
        return load_classification(self.data, self.data_dir, self.text_column, self.text_pair_column,
                                   self.label_column, self.validation_split, seed)
