"""Pure layout rules for every output rank: tile counts, padding, labels, selection by axis."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.capturing.selection import LayerInfo, min_axis_ok, select_layers
from pipeline.config import SelectConfig
from pipeline.rendering import layout


def test_vector_square_pads_with_nan():
    img = layout.to_image(np.arange(10, dtype=np.float32))
    assert img.shape == (3, 4)  # cols = ceil(sqrt(10)) = 4, rows = ceil(10 / 4) = 3
    assert np.array_equal(img.reshape(-1)[:10], np.arange(10))
    assert np.isnan(img.reshape(-1)[10:]).all()


def test_vector_perfect_square_has_no_padding():
    img = layout.to_image(np.ones(16, np.float32))
    assert img.shape == (4, 4) and not np.isnan(img).any()


def test_vector_strip():
    img = layout.to_image(np.arange(7, dtype=np.float32), vector="strip")
    assert img.shape == (1, 7)


def test_scalar_and_sequence():
    assert layout.to_image(np.float32(3)).shape == (1, 1)
    seq = np.random.default_rng(0).random((28, 32)).astype(np.float32)
    assert layout.to_image(seq) is seq or np.array_equal(layout.to_image(seq), seq)


@pytest.mark.parametrize(
    ("channels", "grid"), [(1, (1, 1)), (3, (2, 2)), (8, (3, 3)), (16, (4, 4)), (17, (4, 5))]
)
def test_mosaic_tile_count_and_padding(channels, grid):
    h, w = 5, 4
    arr = np.arange(h * w * channels, dtype=np.float32).reshape(h, w, channels)
    img = layout.to_image(arr)
    rows, cols = grid
    assert layout.near_square(channels) == grid
    assert img.shape == (rows * h + rows - 1, cols * w + cols - 1)
    origins = layout.tile_origins(arr.shape)
    assert len(origins) == channels
    for k, (y, x) in enumerate(origins):
        assert np.array_equal(img[y : y + h, x : x + w], arr[:, :, k])
    # padding rows/cols and unused tiles are NaN: exactly the pixels not covered by a tile
    assert np.isnan(img).sum() == img.size - channels * h * w


def test_mosaic_max_channels_and_labels():
    arr = np.zeros((3, 3, 100), np.float32)
    img = layout.to_image(arr, max_channels=9)
    assert img.shape == (3 * 3 + 2, 3 * 3 + 2)
    labels = layout.channel_labels(arr.shape, max_channels=9)
    assert [t for _, _, t in labels] == [str(k) for k in range(9)]
    assert labels[4] == (4, 4, "4")  # tile (1, 1): 1 * (3 + 1)
    assert "channels 0-8 of 100" in layout.cell_title("conv", arr.shape, 9)
    assert layout.cell_title("conv", (3, 3, 4), 9) == "conv (3, 3, 4)"


def test_volume_is_mean_over_depth_then_mosaic():
    vol = np.stack([np.full((2, 2, 3), d, np.float32) for d in range(4)])  # (D=4, 2, 2, 3)
    img = layout.to_image(vol)
    expected = layout.channel_mosaic(np.full((2, 2, 3), 1.5, np.float32))
    assert np.array_equal(img, expected, equal_nan=True)
    assert len(layout.channel_labels(vol.shape)) == 3
    assert "mean over D=4" in layout.cell_title("conv3d", vol.shape, 64)


def test_no_labels_for_flat_ranks():
    for shape in [(), (5,), (4, 6)]:
        assert layout.channel_labels(shape) == []
        assert layout.cell_title("x", shape, 64) == layout.cell_title("x", shape)


def test_higher_ranks_are_flattened():
    assert layout.to_image(np.zeros((2, 3, 4, 5, 6), np.float32)).shape == (2, 360)


# -- selection by axis size ---------------------------------------------------------------------
def _layers():
    return [
        LayerInfo(0, "in", "InputLayer", (28, 28, 1), is_input=True),
        LayerInfo(1, "conv", "Conv2D", (26, 26, 8)),
        LayerInfo(2, "pool", "MaxPooling2D", (5, 5, 16)),
        LayerInfo(3, "seq", "LSTM", (28, 32)),
        LayerInfo(4, "vec", "Dense", (10,)),
        LayerInfo(5, "backbone/conv", "Conv2D", (13, 13, 8)),
    ]


def test_min_axis_rules():
    assert min_axis_ok((26, 26, 8), (8,))
    assert not min_axis_ok((26, 26, 4), (8,))  # one value: every axis
    assert min_axis_ok((26, 26, 4), (8, 8))  # axes beyond the list are free
    assert not min_axis_ok((10,), (8, 8))  # fewer axes than listed
    assert min_axis_ok((None, 5), (3, 3))
    assert min_axis_ok((1,), ())
    assert not min_axis_ok((), (1,))  # a scalar per pattern: fewer axes than listed
    assert min_axis_ok((), ())


def test_select_all_with_min_axis_and_classes():
    names = lambda cfg: [i.name for i in select_layers(_layers(), cfg)]  # noqa: E731
    assert names(SelectConfig(rule="all")) == ["conv", "pool", "seq", "vec", "backbone/conv"]
    assert names(SelectConfig(rule="all", min_axis=(8, 8))) == ["conv", "seq", "backbone/conv"]
    assert names(SelectConfig(rule="all", exclude_classes=("Conv2D",))) == ["pool", "seq", "vec"]
    assert names(SelectConfig(rule="all", exclude=("backbone/*",), min_axis=(10,))) == [
        "seq",
        "vec",
    ]
    assert names(SelectConfig(rule="seed", min_size=(15, 15))) == ["seq"]


def test_cli_min_axis_flag():
    from pipeline.cli import build_parser, capture_config
    from pipeline.errors import ConfigError

    args = build_parser().parse_args(["capture", "--select", "all", "--min-axis", "8x8"])
    assert capture_config(args).select.min_axis == (8, 8)
    args = build_parser().parse_args(["capture", "--min-axis", "4"])
    cfg = capture_config(args)
    assert cfg.select.min_axis == (4,) and cfg.select.rule == "maps"  # the default rule
    with pytest.raises(ConfigError, match="--min-axis"):
        capture_config(build_parser().parse_args(["capture", "--min-axis", "8xq"]))


def test_painter_draws_one_label_per_tile(tmp_path):
    from PIL import Image

    from pipeline.rendering.cells import Cell, GridOptions
    from pipeline.rendering.grids import PagePainter

    arr = np.random.default_rng(0).random((4, 4, 5)).astype(np.float32)
    cell = Cell(
        "conv (4, 4, 5)", image=layout.to_image(arr), labels=tuple(layout.channel_labels(arr.shape))
    )
    painter = PagePainter(GridOptions(rows=1, cols=2))
    try:
        painter.draw([cell, Cell("v (3,)", image=layout.to_image(np.ones(3)))], tmp_path / "a.png")
        assert painter.axes[1].get_visible() and len(painter.axes[1].texts) == 0  # no labels
        painter.draw([cell, None], tmp_path / "b.png")  # reused: labels kept, not duplicated
        texts = [t.get_text() for t in painter.axes[0].texts]
        assert texts == ["0", "1", "2", "3", "4"]
        assert not painter.axes[1].get_visible()  # the empty slot is hidden, not left drawn
    finally:
        painter.fig.clear()
    a = np.asarray(Image.open(tmp_path / "a.png").convert("RGB")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b.png").convert("RGB")).astype(int)
    half = a.shape[1] // 2
    # The labelled cell looks the same on both pages (labels drawn once, not stacked up) ...
    assert np.array_equal(a[:, :half], b[:, :half])
    # ... and the right slot shows the vector on the first page, nothing on the second.
    assert (a[:, half:] != 255).any()
    assert (b[:, half:] == 255).all()


# -- what a cell says about its values --------------------------------------------------------------
def test_value_caption_and_constant_note():
    assert layout.value_caption(-0.53213, 2.0) == "min -0.5321, max 2"
    assert layout.value_caption(0.0, 1e-7, 3) == "min 0, max 1e-07, 3 NaN/inf"
    assert layout.value_caption(None, None, 5) == "no finite value (5 NaN/inf)"
    assert layout.value_caption(-0.0, -0.0) == "min 0, max 0"
    assert layout.constant_note(0.25, 0.25) == "constant 0.25"
    assert layout.constant_note(0.0, 1.0) is None and layout.constant_note(None, None) is None


def test_shown_values_and_per_channel_scale():
    arr = np.random.default_rng(0).normal(size=(4, 5, 70)).astype(np.float32)
    assert layout.shown_values(arr, 64).shape == (4, 5, 64)
    assert layout.shown_values(np.zeros((2, 4, 5, 3)), 64).shape == (4, 5, 3)  # mean over D
    assert layout.shown_values(np.zeros(7), 64).shape == (7,)
    arr[:, :, 1] = 3.0  # a flat channel: mid-scale
    arr[0, 0, 2] = np.nan  # left as it is, the rest of its channel scaled
    scaled = layout.scale_channels(arr)
    assert scaled.dtype == np.float32 and scaled.shape == arr.shape
    assert np.all(scaled[:, :, 1] == 0.5) and np.isnan(scaled[0, 0, 2])
    for k in (0, 2, 69):
        assert np.nanmin(scaled[:, :, k]) == 0.0 and np.nanmax(scaled[:, :, k]) == 1.0
    assert "color scale per channel" in layout.cell_title("c", (4, 5, 70), 64, per_channel=True)
    assert "per channel" not in layout.cell_title("d", (70,), 64, per_channel=True)


def test_mosaic_shape_and_sources_agree_with_the_mosaic():
    rng = np.random.default_rng(1)
    for shape, most in (((5, 4, 7), 64), ((3, 6, 70), 64), ((2, 2, 1), 64), ((4, 4, 10), 9)):
        arr = rng.random(shape, dtype=np.float32)
        mosaic = layout.channel_mosaic(arr, most)
        assert layout.mosaic_shape(shape, most) == mosaic.shape
        rows, cols = np.indices(mosaic.shape).reshape(2, -1)
        ok, src = layout.mosaic_sources(rows, cols, shape, most)
        assert np.array_equal(ok, ~np.isnan(mosaic.ravel()))  # padding: not a value
        assert np.array_equal(arr.reshape(-1)[src], mosaic.ravel()[ok])


# -- titles that fit, spacing, labels, page names ---------------------------------------------------
def _chars(width: float = 1.0):
    return lambda text: width * len(text)


def test_wrap_breaks_after_separators_and_keeps_the_shape_whole():
    assert layout.wrap_line("conv (3, 3, 4)", 40, _chars()) == ["conv (3, 3, 4)"]
    assert layout.wrap_line("expanded_conv_depthwise_BN (48, 48, 32)", 30, _chars()) == [
        "expanded_conv_depthwise_BN",
        "(48, 48, 32)",
    ]
    assert layout.wrap_line(
        "convnext_tiny_stem/convnext_tiny_stem_conv (24, 24, 96)", 26, _chars()
    ) == [
        "convnext_tiny_stem/",
        "convnext_tiny_stem_conv",
        "(24, 24, 96)",
    ]
    # a word longer than a line is cut between characters; every line fits
    lines = layout.wrap_line("a" * 25 + " (1,)", 10, _chars())
    assert "".join(lines).replace(" ", "") == "a" * 25 + "(1,)"
    assert all(len(line) <= 10 for line in lines)


def test_fit_title_wraps_then_shrinks_then_cuts():
    measure_at = lambda size: _chars(size / 10)  # noqa: E731 - width grows with the size
    assert layout.fit_title("dense (50, 75)", 100, measure_at) == (["dense (50, 75)"], 10.0)
    # three lines at 10 pt are one too many: 8.33 pt allows three
    title = "block_16_expand_relu (3, 3, 960)\nchannels 0-63 of 960"
    assert layout.fit_title(title, 22, measure_at) == (
        ["block_16_expand_relu", "(3, 3, 960)", "channels 0-63 of 960"],
        8.33,
    )
    lines, size = layout.fit_title("a_" * 40 + " (1,)", 20, measure_at)
    assert size == layout.TITLE_SIZES[-1][0] and len(lines) == layout.TITLE_SIZES[-1][1]
    assert lines[-1].endswith("...") and all(len(line) * size / 10 <= 20 for line in lines)


def test_title_width_grid_spacing_and_label_size():
    # 10 in at 100 dpi, matplotlib's default margins: 3 columns leave 273 px between centres
    assert layout.title_width(1000, 3, 0.125, 0.9, 0.2) == pytest.approx(273.5, abs=0.1)
    assert layout.title_width(1000, 1, 0.125, 0.9, 0.2) == pytest.approx(975.0)
    top, hspace = layout.grid_spacing(720, 3, header=40, below=20, page_title=30)
    assert top == 0.88  # room enough under the page title: the default
    axes_h = (top - 0.11) * 720 / (3 + 2 * hspace)
    assert hspace * axes_h == pytest.approx(60)  # the gap holds header and tick labels
    top, _ = layout.grid_spacing(200, 2, header=40, below=0, page_title=30)
    assert top == pytest.approx(1 - 70 / 200)
    assert layout.label_points(60, 100, 2) == layout.LABEL_POINTS[1]
    assert layout.label_points(28, 100, 2) == layout.LABEL_POINTS[0]  # the smallest readable
    assert layout.label_points(14, 100, 2) is None  # no room: no labels
    assert layout.display_scale(228, 228, (391, 391)) == pytest.approx(228 / 391)


def test_page_names_are_padded_to_the_page_count():
    assert [layout.page_name(i, 1) for i in range(1)] == ["0.png"]
    assert layout.page_name(8, 9) == "8.png"
    names = [layout.page_name(i, 18) for i in range(18)]
    assert names[:3] == ["00.png", "01.png", "02.png"] and names == sorted(names)
    assert layout.page_name(7, 100) == "007.png"
