"""The architecture diagram without Graphviz: the traced graph (nodes, edges, groups), its
layout and text, the matplotlib pages, the full model summary, and the choice of drawer."""

from __future__ import annotations

import numpy as np
import pytest
from externals import GRAPHVIZ_HINT, missing_later
from PIL import Image

from pipeline.capturing import diagram
from pipeline.capturing.diagram import (
    chosen_drawer,
    draw_architecture,
    ensure_architecture,
    graphviz_available,
    summary_text,
)
from pipeline.capturing.diagram.draw import BOX_COLORS, FRAME_COLORS
from pipeline.capturing.diagram.graph import GraphNode
from pipeline.capturing.diagram.layout import Box, Diagram, layout, page_ranges
from pipeline.capturing.diagram.text import CHAR_W, DPI, FONT, FONT_PT, node_lines, text_size, wrap
from pipeline.capturing.diagram.trace import model_graph
from pipeline.errors import ConfigError


def branchy_model(keras):
    """A branch (left / through a nested model), a merge, then a custom block of two layers."""
    layers = keras.layers

    class Residual(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = layers.Dense(8, name="a")
            self.second = layers.Dense(8, name="b")

        def call(self, x):
            return x + self.second(self.first(x))

    keras.utils.set_random_seed(0)
    sub_in = keras.Input((8,), name="sub_in")
    inner = layers.Dense(8, name="inner_b")(layers.Dense(8, name="inner_a")(sub_in))
    sub = keras.Model(sub_in, inner, name="sub")
    x = keras.Input((6,), name="x")
    stem = layers.Dense(8, name="stem")(x)
    left = layers.Dense(8, name="left")(stem)
    right = layers.Dense(8, name="right")(sub(stem))
    merged = layers.Add(name="merge")([left, right])
    out = layers.Dense(3, name="head")(Residual(name="block")(merged))
    return keras.Model(x, out, name="branchy")


@pytest.fixture(scope="module")
def branchy(keras):
    return branchy_model(keras)


def _png(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _has_color(pixels, hex_color: str) -> bool:
    rgb = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    return bool((np.abs(pixels.astype(int) - rgb).max(axis=-1) <= 2).any())


def test_graph_of_a_branch_a_merge_a_nested_model_and_a_custom_block(keras, branchy):
    graph = model_graph(branchy)
    assert graph.note == ""
    names = [n.name for n in graph.nodes]
    assert sorted(names) == sorted(
        ["x", "stem", "left", "sub/inner_a", "sub/inner_b", "right", "merge", "block/a",
         "block/b", "head"]
    )  # fmt: skip
    assert {(g.name, g.class_name, g.parent) for g in graph.groups} == {
        ("sub", "Functional", ""),
        ("block", "Residual", ""),
    }
    groups = {n.name: n.group for n in graph.nodes}
    assert groups["sub/inner_a"] == "sub" and groups["block/b"] == "block" and groups["merge"] == ""
    assert set(graph.edges) == {
        ("x", "stem"),
        ("stem", "left"),
        ("stem", "sub/inner_a"),  # into the nested model: its first layer
        ("sub/inner_a", "sub/inner_b"),
        ("sub/inner_b", "right"),  # out of it: its last layer
        ("left", "merge"),
        ("right", "merge"),
        ("merge", "block/a"),  # the custom block's tensor flow, seen from inside
        ("block/a", "block/b"),
        ("block/b", "head"),  # its output is made by plain code (x + ...) after its last layer
    }
    assert len(graph.edges) == len(set(graph.edges))
    assert all(names.index(a) < names.index(b) for a, b in graph.edges)  # in the order they ran


def _keras_edges(keras, model) -> set[tuple[str, str]]:
    """The edges Keras' own ``model_to_dot`` finds (nested models expanded), by layer path."""
    names: dict[str, str] = {}

    def walk(holder, prefix: str) -> None:
        for layer in holder.layers:
            names[str(id(layer))] = prefix + layer.name
            if isinstance(layer, keras.Model):
                walk(layer, f"{prefix}{layer.name}/")

    def edges(dot) -> list[tuple[str, str]]:
        found = [(e.get_source(), e.get_destination()) for e in dot.get_edges()]
        return found + [e for sub in dot.get_subgraphs() for e in edges(sub)]

    walk(model, "")
    dot = keras.utils.model_to_dot(model, expand_nested=True)
    return {(names[a], names[b]) for a, b in edges(dot)}


def test_graph_matches_keras_own_connections_and_shapes(keras, branchy):
    graph = model_graph(branchy)
    expected = _keras_edges(keras, branchy)
    # Keras draws the nested model's own input layer (we pass through it) and the custom block
    # as one box (we draw its layers: in through the first, out through the last).
    into = {a for a, b in expected if b == "sub/sub_in"}
    expected = {(a, b) for a, b in expected if "sub/sub_in" not in (a, b)}
    expected |= {(a, b) for a in into for _, b in _keras_edges(keras, branchy) if _ == "sub/sub_in"}
    expected = {
        ("block/b" if a == "block" else a, "block/a" if b == "block" else b) for a, b in expected
    }
    assert set(graph.edges) - {("block/a", "block/b")} == expected
    nodes = {n.name: n for n in graph.nodes}
    for layer in branchy.layers:
        if layer.name in nodes:
            assert nodes[layer.name].shapes == (tuple(layer.output.shape[1:]),), layer.name
    sub = branchy.get_layer("sub")
    for name in ("inner_a", "inner_b"):
        assert nodes[f"sub/{name}"].shapes == (tuple(sub.get_layer(name).output.shape[1:]),)
    assert nodes["x"].class_name == "InputLayer" and nodes["x"].shapes == ((6,),)
    assert nodes["block/a"].shapes == ((8,),) and nodes["block/b"].class_name == "Dense"


def test_a_layer_called_twice_and_a_recurrent_cell(keras):
    from pipeline.capturing.builtin_models import lstm_model

    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = keras.layers.Dense(4, name="shared")
    out = keras.layers.Concatenate(name="join")([shared(a), shared(b)])
    graph = model_graph(keras.Model([a, b], out))
    assert {n.name for n in graph.nodes} == {"a", "b", "shared", "shared#2", "join"}
    assert {("a", "shared"), ("b", "shared#2"), ("shared", "join"), ("shared#2", "join")} == set(
        graph.edges
    )
    # A recurrent layer calls its cell once per time step: one box, the count said in it.
    lstm = model_graph(lstm_model())
    cells = [n for n in lstm.nodes if n.class_name == "LSTMCell"]
    assert [c.name for c in cells] == ["lstm/lstm_cell", "lstm_2/lstm_cell"]
    assert all(c.calls >= 28 for c in cells)  # 28 time steps
    assert node_lines(cells[0])[0][-1].endswith(f"x{cells[0].calls} calls")


def test_free_sizes_and_names_tensorflow_refuses(keras):
    # A free input size: traced symbolically, the sizes stay free ("?" in the picture).
    x = keras.Input((None, None, 3), name="img")
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(
        keras.layers.Conv2D(4, 3, name="conv")(x)
    )
    graph = model_graph(keras.Model(x, pooled))
    assert graph.note == "" and graph.edges == (("img", "conv"), ("conv", "gap"))
    assert [n.shapes for n in graph.nodes] == [((None, None, 3),), ((None, None, 4),), ((4,),)]
    assert "Conv2D (?, ?, 4)" in node_lines(graph.nodes[1])[0]
    # Names with a space or an accent (tf.function refuses them as scope names): the eager
    # pass draws them under their own names.
    x = keras.Input((4,), name="in put")
    out = keras.layers.Dense(2, name="médian")(keras.layers.Dense(3, name="wide one")(x))
    graph = model_graph(keras.Model(x, out))
    assert graph.note == "" and graph.edges == (("in put", "wide one"), ("wide one", "médian"))


def test_the_trace_leaves_keras_as_it_was_even_when_the_model_fails(keras):
    layer_call, op_call = keras.Layer.__call__, keras.Operation.__call__

    class Broken(keras.layers.Layer):
        def call(self, x):
            if not hasattr(x, "numpy"):  # symbolic (model building): fine; on data: fails
                return x
            raise RuntimeError("this layer fails on data")

    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="d")(Broken(name="broken")(x)))
    graph = model_graph(model)
    assert keras.Layer.__call__ is layer_call and keras.Operation.__call__ is op_call
    assert [n.name for n in graph.nodes] == ["x", "broken", "d"]  # drawn as a chain
    assert "RuntimeError: this layer fails on data" in graph.note
    assert model_graph(branchy_model(keras)).note == ""  # and the next trace works


def test_subclassed_model_is_a_chain_that_says_so(keras, tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.hidden = keras.layers.Dense(5, name="hidden")
            self.out = keras.layers.Dense(2, name="out")

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net()
    net(np.zeros((1, 3), "float32"))
    graph = model_graph(net)
    assert [n.name for n in graph.nodes] == ["hidden", "out"]
    assert graph.edges == (("hidden", "out"),)
    assert "subclassed model" in graph.note and "chain" in graph.note
    assert any("subclassed" in line for line in layout(graph).header)
    (tmp_path / "built").mkdir()
    assert draw_architecture(net, tmp_path / "built", drawer="matplotlib") is not None
    assert (tmp_path / "built" / "model.png").is_file()
    # Never called: no shapes anywhere, the chain is still drawn and summarized.
    unbuilt = Net()
    (tmp_path / "unbuilt").mkdir()
    assert draw_architecture(unbuilt, tmp_path / "unbuilt", drawer="matplotlib") is not None
    assert sorted(p.name for p in (tmp_path / "unbuilt").iterdir()) == ["model.png", "model.txt"]
    assert "(unbuilt)" in (tmp_path / "unbuilt" / "model.txt").read_text(encoding="utf-8")
    assert [node_lines(n)[0] for n in model_graph(unbuilt).nodes] == [
        ("hidden", "Dense"),
        ("out", "Dense"),
    ]


def test_text_fits_its_box_as_matplotlib_draws_it():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    for text in ("expanded_conv_depthwise_BN", "BatchNormalization (112, 112, 144)", "x"):
        for weight in ("normal", "bold"):
            drawn = fig.text(0, 0, text, family=FONT, size=FONT_PT, weight=weight)
            width = drawn.get_window_extent(renderer).width
            assert len(text) * CHAR_W - 1 <= width <= len(text) * CHAR_W, (text, weight, width)
    assert FONT_PT * DPI / 72 >= 12  # text at least 12 px tall at 100 dpi


def test_long_names_wrap_at_their_separators():
    assert wrap("convnext_tiny_stem/convnext_tiny_stem_conv", 30) == [
        "convnext_tiny_stem/",
        "convnext_tiny_stem_conv",
    ]
    assert wrap("a" * 70, 30) == ["a" * 30, "a" * 30, "a" * 10]
    assert wrap("short", 30) == ["short"]
    node = GraphNode("outer/block_16_depthwise_relu", "ReLU", ((3, 3, 960),), "outer")
    lines, bold = node_lines(node)
    assert lines == ("block_16_depthwise_relu", "ReLU (3, 3, 960)") and bold == 1
    w, h = text_size(lines)
    assert w >= len(lines[0]) * CHAR_W and h > 2 * FONT_PT


def test_pages_are_cut_between_rows_of_boxes():
    boxes = tuple(
        Box(f"b{i}", ("b",), 1, "other", 10.0, 20.0 + 60.0 * i, 50.0, 40.0) for i in range(50)
    )
    d = Diagram(width=100.0, height=3040.0, header=("t",), boxes=boxes, frames=(), arrows=())
    pages = page_ranges(d, 700.0)
    assert pages[0][0] == 0.0 and pages[-1][1] == d.height
    assert all(a[1] == b[0] for a, b in zip(pages, pages[1:], strict=False))
    assert all(bottom - top <= 700.0 for top, bottom in pages)
    for _, cut in pages[:-1]:
        assert not any(b.y <= cut <= b.y + b.h for b in boxes), cut
    assert page_ranges(d, 5000.0) == [(0.0, d.height)]


def test_matplotlib_drawer_draws_boxes_frames_and_arrows(keras, branchy, tmp_path):
    assert draw_architecture(branchy, tmp_path, drawer="matplotlib") == tmp_path / "model.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.png", "model.txt"]
    pixels = _png(tmp_path / "model.png")
    height, width, _ = pixels.shape
    graph = model_graph(branchy)
    drawn = layout(graph)
    assert (width, height) == (round(drawn.width), round(drawn.height))
    assert height > width and 200 < width < 1000 and height < 60 * 10 * 3
    assert _has_color(pixels, FRAME_COLORS[0])  # the groups' frames
    for kind in ("input", "merge", "dense"):
        assert _has_color(pixels, BOX_COLORS[kind]), kind
    names = [line for box in drawn.boxes for line in box.lines[: box.bold]]
    assert sorted(names) == sorted(
        ["x", "stem", "left", "inner_a", "inner_b", "right", "merge", "a", "b", "head"]
    )
    assert {f.name for f in drawn.frames} == {"sub", "block"}
    for box in drawn.boxes:  # inside the page, and no two boxes overlap
        assert 0 <= box.x and box.x + box.w <= drawn.width and box.y + box.h <= drawn.height
        for other in drawn.boxes:
            if other is not box:
                apart = (
                    box.x + box.w <= other.x or other.x + other.w <= box.x
                    or box.y + box.h <= other.y or other.y + other.h <= box.y
                )  # fmt: skip
                assert apart, (box.name, other.name)
    by_name = {b.name: b for b in drawn.boxes}
    for frame in drawn.frames:  # a frame holds exactly its own layers
        inside = {
            b.name for b in drawn.boxes
            if frame.x <= b.x and b.x + b.w <= frame.x + frame.w
            and frame.y <= b.y and b.y + b.h <= frame.y + frame.h
        }  # fmt: skip
        assert inside == {n.name for n in graph.nodes if n.group == frame.name}
    assert len(drawn.arrows) == len(graph.edges)
    for arrow in drawn.arrows:  # from the bottom of the source to the top of the target
        src, dst = by_name[arrow.source], by_name[arrow.target]
        assert arrow.points[0] == (src.x + src.w / 2, src.y + src.h)
        assert arrow.points[-1] == (dst.x + dst.w / 2, dst.y)


def test_summary_keeps_every_column(keras, branchy, tmp_path):
    text = summary_text(branchy)
    assert "Param #" in text and "Connected to" in text
    assert "…" not in text  # no cell cut short
    assert "left[0][0]" in text and "right[0][0]" in text  # the merge's inputs
    for name in ("stem", "left", "right", "merge", "block", "head", "inner_a", "inner_b"):
        assert name in text
    draw_architecture(branchy, tmp_path, drawer="matplotlib")
    assert (tmp_path / "model.txt").read_text(encoding="utf-8") == text


def test_drawer_choice(monkeypatch, tmp_path, seed_model):
    monkeypatch.delenv(diagram.DRAWER_ENV, raising=False)
    if graphviz_available():
        assert chosen_drawer() == "graphviz"
    else:  # auto falls back to Passage's own drawing
        assert chosen_drawer() == "matplotlib"
        missing_later(f"{GRAPHVIZ_HINT}: auto's choice of Graphviz was not checked")
    assert chosen_drawer("matplotlib") == "matplotlib"
    monkeypatch.setenv(diagram.DRAWER_ENV, "matplotlib")
    assert chosen_drawer() == "matplotlib"
    # forced: our palette, not Keras' plot_model picture, although Graphviz is here
    draw_architecture(seed_model, tmp_path)
    assert _has_color(_png(tmp_path / "model.png"), BOX_COLORS["input"])
    monkeypatch.setenv(diagram.DRAWER_ENV, "pencil")
    with pytest.raises(ConfigError, match="one of auto, graphviz, matplotlib; received 'pencil'"):
        chosen_drawer()
    monkeypatch.delenv(diagram.DRAWER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no `dot`
    assert chosen_drawer() == "matplotlib" and chosen_drawer("graphviz") == "matplotlib"


def test_a_tall_diagram_continues_on_numbered_pages(monkeypatch, tmp_path, seed_model):
    monkeypatch.setattr(diagram, "MAX_PAGE_PX", 200)
    draw_architecture(seed_model, tmp_path, drawer="matplotlib")
    pages = sorted(p.name for p in tmp_path.glob("model*.png"))
    assert pages[0] == "model-2.png" and pages[-1] == "model.png" and len(pages) >= 3
    for page in pages:
        with Image.open(tmp_path / page) as img:
            assert img.size[1] <= 200
    # drawn again with room for one page: the old continuation pages go
    monkeypatch.setattr(diagram, "MAX_PAGE_PX", 12000)
    draw_architecture(seed_model, tmp_path, drawer="matplotlib")
    assert sorted(p.name for p in tmp_path.glob("model*.png")) == ["model.png"]


def test_mobilenet_v2_diagram_is_readable(keras, tmp_path):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    graph = model_graph(model)
    assert graph.note == "" and len(graph.nodes) == len(model.layers)  # every layer, one box
    assert sum(1 for n in graph.nodes if n.class_name == "Add") == 10
    assert len(graph.edges) == len(graph.nodes) - 1 + 10  # a chain plus the residual skips
    draw_architecture(model, tmp_path, drawer="matplotlib")
    pages = sorted(tmp_path.glob("model*.png"))
    assert pages and pages[0].name in ("model.png", "model-2.png")
    total = 0
    for page in pages:
        with Image.open(page) as img:
            width, height = img.size
        total += height
        assert 250 <= width <= 1200 and height <= diagram.MAX_PAGE_PX, (page.name, img.size)
        assert page.stat().st_size < 3_000_000
    assert total >= 40 * len(model.layers)  # each box at least 40 px tall: text at full size


def test_a_resumed_capture_keeps_its_picture_and_completes_a_summary_only_run(tmp_path, seed_model):
    (tmp_path / "model.txt").write_text("a summary cut at 80 columns by an older version\n")
    assert ensure_architecture(seed_model, tmp_path) == tmp_path / "model.png"
    assert "Param #" in (tmp_path / "model.txt").read_text(encoding="utf-8")
    (tmp_path / "model.png").write_bytes(b"kept")  # already there: not drawn again
    assert ensure_architecture(seed_model, tmp_path) == tmp_path / "model.png"
    assert (tmp_path / "model.png").read_bytes() == b"kept"
