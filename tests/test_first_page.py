"""The first page and the notation page agree with the library they describe (issue 18)."""

import dataclasses
import json
import re
from pathlib import Path

from bertlab.config import PRESETS, BertConfig

ROOT = Path(__file__).resolve().parents[1]
NOTATION = ROOT / "book" / "notation.md"
FIRST_PAGE = ROOT / "notebooks" / "00_what_bert_is_for.ipynb"


def test_the_config_fields_the_notation_page_names_exist():
    text = NOTATION.read_text(encoding="utf-8")
    names = {f.name for f in dataclasses.fields(BertConfig)} | {"head_dim"}
    named = {"num_hidden_layers", "hidden_size", "num_attention_heads", "head_dim", "intermediate_size",
             "vocab_size", "max_position_embeddings", "type_vocab_size"}
    for field in named:
        assert f"`{field}`" in text, f"book/notation.md does not name BertConfig.{field}"
    assert named <= names, sorted(named - names)


def test_the_sizes_on_both_pages_are_the_presets():
    notation = NOTATION.read_text(encoding="utf-8")
    cells = json.loads(FIRST_PAGE.read_text(encoding="utf-8"))["cells"]
    first = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    (Lb, Hb, Ab), (Ll, Hl, Al) = PRESETS["base"], PRESETS["large"]
    for name, (L, H, A) in (("base", (Lb, Hb, Ab)), ("large", (Ll, Hl, Al))):
        assert f"| BERT-{name} | {L} | {H} | {A} | {H // A} | {4 * H} |" in first, f"first page: BERT-{name} row"
        assert BertConfig.from_preset(name).intermediate_size == 4 * H
    for symbol, base, large in (("L", Lb, Ll), ("H", Hb, Hl), ("A", Ab, Al), ("4H", 4 * Hb, 4 * Hl)):
        assert re.search(rf"^\| \${symbol}\$ \|[^|\n]*\| {base} \| {large} \|", notation, re.M), (
            f"book/notation.md: the row of ${symbol}$ does not give {base} and {large}")


def test_the_first_page_has_a_place_for_the_chapter_map_and_links_every_chapter():
    cells = json.loads(FIRST_PAGE.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    has_map = "<!-- chapter map diagram goes here -->" in text or "diagram_chapter_map" in text
    assert has_map, "the first page lost its chapter map"
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if nb != FIRST_PAGE:
            assert f"]({nb.name})" in text, f"the first page does not link {nb.name}"
