"""Saving a figure to a file must not disturb pyplot (a notebook's inline plots); the conceptual diagrams
show what they must, render cleanly and keep their text apart."""

import io
import warnings
from collections import Counter

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from bertlab import plots
from bertlab.finetune import save_learning_curve
from bertlab.plots import save_confusion_matrix, save_pretraining_curves


def test_saving_pngs_leaves_pyplot_alone(tmp_path):
    previous = matplotlib.get_backend()
    plt.switch_backend("svg")  # stands in for a notebook's inline backend: it must stay selected
    try:
        _save_all_and_check(tmp_path)
    finally:
        plt.switch_backend(previous)


def _save_all_and_check(tmp_path):
    backend, open_before = matplotlib.get_backend(), plt.get_fignums()
    history = [{"step": 1, "train_loss": 1.0, "train_mlm_loss": 2.0, "train_mlm_accuracy": 0.1},
               {"step": 2, "eval_loss": 0.8, "eval_accuracy": 0.6, "eval_mlm_loss": 1.5, "eval_mlm_accuracy": 0.2}]
    paths = [save_learning_curve(history, tmp_path / "a.png"),
             save_pretraining_curves(history, tmp_path / "b.png"),
             save_confusion_matrix([[3, 1], [0, 4]], ["neg", "pos"], tmp_path / "c.png")]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_before


# --------------------------------------------------------------------------- conceptual diagrams

# Each diagram and labels it must show (substrings of its Text artists; mathtext is searched as written).
DIAGRAMS = {
    "diagram_attention": ["$Q = XW^Q$", "$K = XW^K$", "$V = XW^V$", "QK^{\\top} / \\sqrt{d_k}", "softmax",
                          "each row sums to 1", "query", "$k_{5}$", "$v_{0}$", "0.40", "sum to 1.00", "dict",
                          "hard lookup"],
    "diagram_multi_head": ["W^O", "d_k = H/A", "split", "concatenate", "head 0", "head 3", "$Q_{3}$", "$V_{0}$",
                           "H = 768, A = 12", "$d_k$ = 64"],
    "diagram_input_representation": ["[CLS]", "[SEP]", "##ing", "token embeddings", "segment embeddings",
                                     "position embeddings", "$E_A$", "$E_B$", "$E_{0}$", "$E_{10}$",
                                     "LayerNorm", "dropout", "sentence A", "sentence B"],
    "diagram_encoder_layer": ["multi-head self-attention", "LayerNorm", "dropout", "4H", "GELU", "post-LN",
                              "pre-LN", "× L", "residual", "W^O"],
    "diagram_pretraining": ["[MASK]", "15%", "80%", "10%", "50%", "IsNext", "NotNext", "[CLS]", "pooler",
                            "MLM", "NSP", "random token", "unchanged"],
    "diagram_classification_head": ["[CLS]", "pooler", "tanh", "dropout", "softmax", "number of labels",
                                    "all the weights", "h_{\\mathrm{[CLS]}}", "new"],
    "diagram_pretrain_finetune": ["unlabelled text", "MLM + NSP", "once, expensive", "pretrained\nweights",
                                  "fine-tuning", "classifier", "new head", "all weights updated"],
    "diagram_chapter_map": ["Start", "Foundations", "Pretraining and\nfine-tuning", "Appendix", "Attention",
                            "Misconceptions"],
    "diagram_wordpiece": ["play", "##ing", "un", "##aff", "##able", "longest match", "vocabulary", "[UNK]"],
}


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a glyph missing from the font, a mathtext problem
        fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _layout(fig) -> list[tuple]:
    """What a figure draws, in a comparable form: every text with its place, every patch with its corners."""
    return ([(t.get_text(), t.get_position(), t.get_fontsize()) for t in fig.findobj(Text)]
            + [(type(p).__name__, tuple(p.get_extents().bounds)) for ax in fig.axes for p in ax.patches])


def test_every_diagram_function_is_listed_here():
    assert {n for n in dir(plots) if n.startswith("diagram_")} == set(DIAGRAMS)


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_diagram_draws_its_labels_and_renders_cleanly(name):
    open_before = plt.get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = getattr(plots, name)()
        again = getattr(plots, name)()
    try:
        assert _layout(again) == _layout(fig), "the same call draws the same picture"
        plt.close(again)
        assert isinstance(fig, Figure)
        assert plt.get_fignums() == open_before, "diagrams are drawn outside pyplot"
        assert fig.axes and not any(ax.axison for ax in fig.axes), "axes are turned off"
        width, height = fig.get_size_inches()
        assert 8.5 <= width <= 12 and 4 <= height <= 10
        texts = [t for t in fig.findobj(Text) if t.get_text().strip()]
        joined = "\n".join(t.get_text() for t in texts)
        missing = [label for label in DIAGRAMS[name] if label not in joined]
        assert not missing, f"{name} lacks {missing}"
        assert min(t.get_fontsize() for t in texts) >= 9
        png = _png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        # no text runs off the figure or into another text (extents in pixels, as just drawn)
        renderer = fig.canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        for text, box in boxes:
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, text
        for i, (a, box_a) in enumerate(boxes):
            for b, box_b in boxes[i + 1:]:
                overlap = (min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0),
                           min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0))
                assert min(overlap) <= 1, f"{name}: {a!r} overlaps {b!r}"
    finally:
        plt.close(fig)


def test_attention_weights_are_drawn_as_given():
    fig = plots.diagram_attention(weights=(0.1, 0.2, 0.3, 0.1, 0.1, 0.2))
    texts = _texts(fig)
    assert "0.30" in texts and "0.40" not in texts and "the weights sum to 1.00" in texts
    plt.close(fig)


def test_input_representation_segments_and_positions():
    fig = plots.diagram_input_representation()
    counts = Counter(_texts(fig))
    assert counts["$E_A$"] == 6 and counts["$E_B$"] == 5  # [CLS] ... first [SEP] is sentence A
    assert all(counts[f"$E_{{{i}}}$"] == 1 for i in range(11)) and counts["$E_{11}$"] == 0  # from 0
    assert counts["$E_{\\#\\#\\mathrm{ing}}$"] == 1 and counts["[SEP]"] == 2
    plt.close(fig)


def test_encoder_layer_is_post_ln():
    fig = plots.diagram_encoder_layer()
    texts = _texts(fig)
    counts = Counter(texts)
    assert counts["LayerNorm"] == 2 and counts["dropout"] == 2 and counts["+"] == 2
    # LayerNorm comes after each add: lower on the page than the add it follows (the flow runs down)
    y = {id(t): t.get_position()[1] for t in fig.findobj(Text)}
    adds = sorted((y[id(t)] for t in fig.findobj(Text) if t.get_text() == "+"), reverse=True)
    norms = sorted((y[id(t)] for t in fig.findobj(Text) if t.get_text() == "LayerNorm"), reverse=True)
    assert norms[0] < adds[0] and adds[1] < norms[0] and norms[1] < adds[1]
    plt.close(fig)


def test_pretraining_masking_shares():
    fig = plots.diagram_pretraining()
    counts = Counter(_texts(fig))
    assert counts["80%"] == 1 and counts["10%"] == 2 and counts["[MASK]"] >= 2
    assert counts["IsNext"] == 2 and counts["NotNext"] == 1
    plt.close(fig)
    fig = plots.diagram_pretraining(random_token="banana", random_sentence="the sun is hot")
    texts = _texts(fig)
    assert "banana" in texts and "B: the sun is hot" in texts
    plt.close(fig)


def test_pretrain_finetune_fans_out_to_every_task():
    tasks = [("a", "x"), ("b", "y"), ("c", "z"), ("d", "w")]
    fig = plots.diagram_pretrain_finetune(tasks=tasks)
    counts = Counter(_texts(fig))
    assert counts["classifier"] == 4 and all(counts[f"“{p}”"] == 1 for _, p in tasks)
    plt.close(fig)


def test_chapter_map_shows_every_chapter():
    fig = plots.diagram_chapter_map()
    texts = _texts(fig)
    for number, title, _ in plots.BOOK_CHAPTERS:
        assert number in texts and title.split()[0] in "\n".join(texts)
    assert len(plots.BOOK_CHAPTERS) == 14
    plt.close(fig)


def test_diagrams_show_themselves_in_jupyter():
    # a notebook cell that ends with a diagram must store a picture, whether or not pyplot has started
    fig = plots.diagram_chapter_map()
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_chapter_map_honours_a_custom_list():
    chapters = [("1", "Alpha", "Part one"), ("2", "Beta $x", "Part one"), ("X", "Gamma", "Part two")]
    fig = plots.diagram_chapter_map(chapters=chapters)
    texts = _texts(fig)
    assert {"1", "2", "X", "Alpha", "Beta $x", "Gamma", "Part one", "Part two"} <= set(texts)
    assert "Misconceptions" not in texts and "A1" not in texts
    _png(fig)  # a lone "$" in a title is shown as it is, not read as mathtext
    plt.close(fig)


def test_wordpiece_split_is_greedy_longest_match_first():
    vocab = set(plots.WORDPIECE_VOCAB)
    pieces = lambda word: [p for _, p, _ in plots._wordpiece_steps(word, vocab)]  # noqa: E731
    assert pieces("unaffable") == ["un", "##aff", "##able"]  # the google-research/bert example
    assert pieces("playing") == ["play", "##ing"] and pieces("plays") == ["play", "##s"]
    assert plots._wordpiece_steps("xyz", vocab) is None  # no prefix matches: the word is [UNK]
    fig = plots.diagram_wordpiece(words=["unplayed"], vocab=["un", "##play", "##ed", "[UNK]"])
    texts = _texts(fig)
    assert {"un", "##play", "##ed"} <= set(texts)
    plt.close(fig)
    fig = plots.diagram_wordpiece(words=["zebra"])
    assert "[UNK]" in _texts(fig) and "no prefix matches" in _texts(fig)
    plt.close(fig)
