"""The analysis pictures: pure layout rules with exact expectations, and real PNGs drawn from
analysis results computed here with numpy on whole arrays (no TensorFlow)."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from page_pixels import FRAME, Extent, colormap_value
from PIL import Image

from pipeline.errors import ConfigError
from pipeline.rendering import layout
from pipeline.rendering.analysis import (
    draw_cka,
    draw_classes,
    draw_cross_cka,
    draw_epoch_cka,
    draw_summary,
    draw_top,
    heatmaps,
    maps,
    summary,
    thumbs,
)
from pipeline.rendering.analysis import heat_layout as hl

log = logging.getLogger(__name__)
MARK_RGB = (192, 0, 0)  # summary.MARK, the colour of dead channels


def analysis_result(data: np.ndarray, k: int = 9, labels: np.ndarray | None = None) -> dict:
    """The analysis keys of one layer, computed with numpy on the whole (N, *shape) array."""
    a = np.asarray(data, np.float64)
    n, c = a.shape[0], (a.shape[-1] if a.ndim > 1 else 1)
    finite = np.isfinite(a)
    kept = np.where(finite, a, np.nan)
    per = kept.reshape(n, -1, c)  # (patterns, positions, channels)
    with warnings.catch_warnings():  # all-NaN slices give NaN, as the statistics should
        warnings.simplefilter("ignore", RuntimeWarning)
        act = np.nanmean(per, axis=1)  # channel activation (N, C)
        result = {
            "mean": np.nanmean(kept, 0),
            "std": np.nanstd(kept, 0),
            "min": np.nanmin(kept, 0),
            "max": np.nanmax(kept, 0),
            "channel_mean": np.nanmean(act, 0),
            "channel_std": np.nanstd(act, 0),
        }
    values = a[finite]
    lo, hi = (values.min(), values.max()) if values.size else (np.nan, np.nan)
    edges = np.linspace(lo, hi, 65)
    counts = np.histogram(values, edges)[0] if values.size else np.zeros(64, np.int64)
    top_index = np.full((c, k), -1, np.int64)
    top_value = np.full((c, k), np.nan)
    for ch in range(c):
        score = np.where(np.isfinite(act[:, ch]), act[:, ch], -np.inf)
        order = np.lexsort((np.arange(n), -score))[:k]  # descending, ties to the lower index
        top_index[ch, : order.size] = order
        top_value[ch, : order.size] = act[order, ch]
    result.update(
        frac_positive=(np.where(finite, a, 0) > 0).mean(0),
        count=finite.sum(0).astype(np.int64),
        nonfinite=np.int64((~finite).sum()),
        channel_frac_positive=(np.nan_to_num(act) > 0).mean(0),
        dead=~np.any(np.nan_to_num(per) > 0, axis=(0, 1)),
        hist_edges=edges,
        hist_counts=counts.astype(np.int64),
        top_index=top_index,
        top_value=top_value,
    )
    if labels is not None:
        classes = np.unique(labels)
        result["classes"] = classes.astype(np.int64)
        result["class_channel_mean"] = np.stack([act[labels == cl].mean(0) for cl in classes])
    return result


def read_png(path) -> np.ndarray:
    assert path.exists(), path
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def assert_picture(path, min_w: int, min_h: int) -> np.ndarray:
    """A real, non-blank PNG of at least min_w x min_h pixels, alone in its folder (no
    temporary left behind)."""
    pixels = read_png(path)
    h, w = pixels.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    assert path.stat().st_size > 5_000
    inked = np.any(pixels < 250, axis=-1).mean()
    assert inked > 0.03, f"{path.name}: only {inked:.1%} of the pixels drawn"
    assert colours(pixels) > 50  # colour maps, not flat fills
    assert [p.name for p in path.parent.iterdir() if ".tmp" in p.name] == []
    return pixels


def colours(pixels: np.ndarray) -> int:
    """How many distinct colours ``pixels`` (..., 3) uint8 hold."""
    p = pixels.reshape(-1, 3).astype(np.uint32)
    return np.unique(p[:, 0] << 16 | p[:, 1] << 8 | p[:, 2]).size


@pytest.fixture
def drawn(monkeypatch) -> dict[Path, list[tuple[Extent, tuple[int, ...]]]]:
    """Where each picture's colour-mapped images landed: per saved PNG, (display extent, data
    shape) of every ``imshow`` image, read off the figure after its one real draw, just before
    ``save_figure`` releases it (the figure is drawn and saved exactly as without this)."""
    found: dict[Path, list[tuple[Extent, tuple[int, ...]]]] = {}
    for module in (heatmaps, summary):

        def spy(fig, path, real=module.save_figure):
            release = fig.clear

            def clear(*args, **kwargs):
                found[Path(path)] = [
                    (tuple(im.get_window_extent().extents), im.get_array().shape)
                    for ax in fig.axes
                    for im in ax.images
                ]
                return release(*args, **kwargs)

            fig.clear = clear
            return real(fig, path)

        monkeypatch.setattr(module, "save_figure", spy)
    return found


def cell_colours(pixels: np.ndarray, extent: Extent, shape: tuple[int, ...]) -> np.ndarray:
    """(rows, cols, 3): the colour that fills each cell of an image of ``shape`` drawn over
    ``extent``: the most common colour of the middle of the cell, clear of the axes frame (a
    written value, or a label over a corner, covers less of it)."""
    x0, y0, x1, y1 = extent
    h, w = shape[:2]
    top = pixels.shape[0] - y1
    ch, cw = (y1 - y0) / h, (x1 - x0) / w

    def span(start: float, size: float, i: int, lo: float, hi: float) -> slice:
        a = max(start + (i + 0.15) * size, lo + FRAME)
        b = min(start + (i + 0.85) * size, hi - FRAME)
        return slice(int(a), max(int(np.ceil(b)), int(a) + 1))

    codes = pixels.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    out = np.zeros((h, w), np.int64)
    for r in range(h):
        rows = span(top, ch, r, top, top + y1 - y0)
        for c in range(w):
            found, counts = np.unique(codes[rows, span(x0, cw, c, x0, x1)], return_counts=True)
            out[r, c] = found[counts.argmax()]
    return np.stack([out >> 16, (out >> 8) & 255, out & 255], axis=-1)


def assert_cells_read_back(
    pixels: np.ndarray,
    extent: Extent,
    values: np.ndarray,
    cmap: str,
    limits: tuple[float, float],
    bad: tuple[int, int, int],
) -> None:
    """Every cell's colour, read back through the colormap, is the stored value within the
    colormap's quantization step (the range of the entry it was painted with); a NaN cell
    has the bad colour."""
    values = np.asarray(values, np.float64)
    colours = cell_colours(pixels, extent, values.shape)
    finite = np.isfinite(values)
    assert np.all(colours[~finite] == bad), "a cell without a value is not drawn blank"
    low, high, dist = colormap_value(colours[finite], cmap, *limits)
    v = values[finite]
    slack = 1e-6 * (limits[1] - limits[0])  # imshow resamples the data in float32 first
    assert np.all(dist == 0), f"{np.sum(dist > 0)} cells hold colours not in {cmap}"
    wrong = (v < low - slack) | (v > high + slack)
    assert not wrong.any(), (
        f"{wrong.sum()} of {v.size} cells read back other values: e.g. stored "
        f"{v[wrong][:3]}, read [{low[wrong][:3]}, {high[wrong][:3]}]"
    )


def red_pixels(pixels: np.ndarray) -> int:
    return int(np.all(np.abs(pixels.astype(int) - MARK_RGB) <= 12, axis=-1).sum())


# -- where dead channels are marked (pure) ---------------------------------------------------------
def test_dead_tiles_of_a_capped_mosaic():
    shape = (4, 5, 70)
    dead = np.zeros(70, bool)
    dead[[1, 9, 65]] = True
    marks = maps.dead_marks(shape, dead, max_channels=64)
    # 64 tiles are 8 x 8; tile k starts at (k // 8 * (4 + 1), k % 8 * (5 + 1))
    assert marks.tiles == [(0, 6, 4, 5), (5, 6, 4, 5)]
    assert marks.hidden == 1 and marks.pixels == [] and marks.columns == []


def test_dead_tiles_cover_exactly_their_channel_on_the_drawn_image():
    for shape in ((3, 4, 70), (2, 3, 4, 6), (5, 5, 10)):
        c = shape[-1]
        values = np.broadcast_to(np.arange(c, dtype=np.float64), shape)
        dead = np.arange(c) % 3 == 1
        image = maps.panel_image(values)
        marks = maps.dead_marks(shape, dead)
        shown = [k for k in np.flatnonzero(dead) if k < 64]
        assert len(marks.tiles) == len(shown)
        for k, (r, q, h, w) in zip(shown, marks.tiles, strict=True):
            tile = image[r : r + h, q : q + w]
            assert tile.shape == shape[-3:-1] and np.all(tile == k)


def test_dead_units_of_vectors_sequences_and_high_ranks():
    dead = np.zeros(10, bool)
    dead[[0, 5, 9]] = True
    marks = maps.dead_marks((10,), dead)  # 10 units drawn 3 x 4, row by row
    assert marks.pixels == [(0, 0), (1, 1), (2, 1)]
    image = maps.panel_image(np.arange(10.0))
    assert [image[r, q] for r, q in marks.pixels] == [0, 5, 9]
    seq = np.zeros(3, bool)
    seq[2] = True
    assert maps.dead_marks((7, 3), seq).columns == [2]
    # rank 5 drawn as (first axis, rest): column j shows channel j % C
    assert maps.dead_marks((2, 1, 2, 2, 3), np.array([False, True, False])).columns == [1, 4, 7, 10]
    high = np.broadcast_to(np.arange(3.0), (2, 1, 2, 2, 3))
    assert np.all(maps.panel_image(high)[:, [1, 4, 7, 10]] == 1)


def test_titles_and_histogram_edges():
    dead = np.zeros(32, bool)
    dead[:7] = True
    assert maps.dead_line(dead) == "7 of 32 channels dead"
    assert maps.dead_line(np.zeros(8, bool)) == "no dead channel of 8"
    assert maps.sheet_title("conv", (6, 6, 100), 1000, dead[:1].repeat(100), epoch=2) == (
        "conv (6, 6, 100), 1000 patterns, epoch 2\n100 of 100 channels dead; "
        "maps: channels 0-63 of 100"
    )
    assert maps.histogram_edges(np.full(65, np.nan)) is None
    flat = maps.histogram_edges(np.full(65, 2.0))
    assert flat[0] == 1.5 and flat[-1] == 2.5 and flat.size == 65
    assert maps.channel_style(64) == "bars" and maps.channel_style(65) == "line"


# -- the top-patterns sheet's geometry and pixels (pure) -----------------------------------------------
def test_thumbnail_scale_and_sheet_geometry():
    assert thumbs.fit_scale(8, 8) == (6, 1)
    assert thumbs.fit_scale(50, 50) == (1, 1)
    assert thumbs.fit_scale(300, 200) == (1, 3)
    assert thumbs.shown_size(300, 200) == (100, 67)
    lay = thumbs.TopLayout(channels=10, k=3, cell=(20, 30), groups=2, rows=5)
    row_h, group_w = 20 + thumbs.CAPTION + thumbs.GAP, thumbs.LABEL + 3 * (30 + thumbs.GAP)
    assert (lay.row_height, lay.group_width) == (row_h, group_w)
    assert lay.row_origin(7) == (thumbs.TITLE + 2 * row_h, group_w + thumbs.GROUP_GAP)
    assert lay.origin(7, 2) == (thumbs.TITLE + 2 * row_h, lay.row_origin(7)[1] + thumbs.LABEL + 68)
    assert lay.size == (
        thumbs.TITLE + 5 * row_h + thumbs.GAP,
        2 * group_w + thumbs.GROUP_GAP + thumbs.GAP,
    )
    # 64 rows of 9 thumbnails are split into groups side by side; 4 rows stay in one
    assert thumbs.top_layout(64, 9, (50, 50)).groups > 1
    assert thumbs.top_layout(4, 9, (50, 50)).groups == 1
    big = thumbs.top_layout(64, 9, (50, 50))
    h, w = big.size
    others = [thumbs.TopLayout(64, 9, (50, 50), g, -(-64 // g)).size for g in (1, 2, 3, 4)]
    assert abs(np.log(w / h / thumbs.ASPECT)) == min(
        abs(np.log(b / a / thumbs.ASPECT)) for a, b in others
    )


def test_what_a_thumbnail_shows():
    rng = np.random.default_rng(1)
    out = rng.normal(size=(6, 7, 5))
    np.testing.assert_array_equal(
        thumbs.picture(out, 3, "layer output", None), out[..., 3].astype(np.float32)
    )
    vol = rng.normal(size=(2, 6, 7, 5))
    np.testing.assert_allclose(
        thumbs.picture(vol, 4, "layer output", None), vol.mean(0)[..., 4], rtol=1e-6
    )
    # an input goes through render's rules: (H, W, C > 3) as the channel mosaic
    np.testing.assert_array_equal(thumbs.picture(out, 3, "input", None), layout.to_image(out))
    gray = rng.random((6, 7, 1))
    np.testing.assert_array_equal(
        thumbs.picture(gray, 0, "input", None), gray[..., 0].astype(np.float32)
    )
    pics = [rng.integers(0, 256, (4, 4, 3)).astype(np.uint8) for _ in range(3)]
    assert thumbs.sheet_rgb_scale(pics) == 255.0
    assert thumbs.sheet_rgb_scale([p / 255.0 for p in pics]) == 1.0
    assert thumbs.sheet_rgb_scale([p / 255.0 - 0.5 for p in pics]) is None
    assert thumbs.sheet_rgb_scale([rng.random((4, 4))]) is None
    assert thumbs.caption(12, 0.5, 200, 6.0) == "#12 0.5"
    assert thumbs.caption(123456, -0.123456, 40, 6.0) == "#123456\n-0.1235"


def test_colorize_and_paste():
    lut = np.stack([np.arange(256)] * 3, axis=1).astype(np.uint8)
    img = np.array([[0.0, 1.0], [np.nan, 0.5]])
    rgb = thumbs.colorize(img, 0.0, 1.0, lut)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == list(thumbs.BAD) and rgb[1, 1].tolist() == [127] * 3
    lay = thumbs.TopLayout(channels=1, k=2, cell=(4, 6), groups=1, rows=1)
    sheet = thumbs.blank_sheet(lay)
    thumbs.paste(sheet, lay, 0, 0, np.zeros((2, 2, 3), np.uint8))
    thumbs.paste(sheet, lay, 0, 1, None)
    y, x = lay.origin(0, 0)
    assert np.all(sheet[y + 1 : y + 3, x + 2 : x + 4] == 0)  # centred in its 4 x 6 cell
    assert np.all(sheet[y, x : x + 6] == 255)
    y, x = lay.origin(0, 1)
    assert np.all(sheet[y : y + 4, x : x + 6] == thumbs.MISSING)


# -- heatmap layout (pure) --------------------------------------------------------------------------
def test_long_names_are_shortened_and_stay_distinct():
    assert hl.shorten("dense", 10) == "dense"
    assert hl.shorten("model/block_1/conv2d_relu", 14) == "…/conv2d_relu"
    long = ["encoder/stage_3/very_long_sublayer_name", "decoder/stage_3/very_long_sublayer_name"]
    short = hl.short_names(long, 20)
    assert len(set(short)) == 2 and all(len(s) <= 20 for s in short)
    assert short[0].startswith("encoder") and short[1].startswith("decoder")
    # names that differ only in the middle keep the middle
    deep = [f"backbone/stage_{i // 5}/residual_block_{i}/conv2d_with_long_name" for i in range(30)]
    short = hl.short_names(deep)
    assert short[7] == "…/stage_1/residual_block_7/…" and len(set(short)) == 30
    assert hl.common_parts(deep) == (1, 1) and hl.common_parts(["a/b", "a/b"]) == (0, 0)
    assert hl.short_names(["conv2d", "dense"]) == ["conv2d", "dense"]


def test_heatmap_geometry():
    small = hl.heat_geometry(5, 5, 12, 12)
    assert small.cell_w == small.cell_h == hl.CELL_INCHES[1] and small.value_points is not None
    thirty = hl.heat_geometry(30, 30, 32, 32)
    assert thirty.cell_w == pytest.approx(11 / 30) and thirty.value_points >= hl.MIN_VALUE_POINTS
    assert thirty.rotate == 90 and thirty.col_step == 1
    assert thirty.width > 30 * thirty.cell_w + 32 * thirty.row_points * 0.62 / 72
    many = hl.heat_geometry(200, 200, 10, 10)
    assert many.cell_w == hl.CELL_INCHES[0] and many.value_points is None
    classes = hl.heat_geometry(10, 512, 7, 3, square=False)
    assert classes.col_step > 1 and classes.rotate == 0 and classes.value_points is None
    assert classes.width <= hl.WIDE_INCHES + 5
    assert hl.ink((0.0, 0.0, 0.2)) == "white" and hl.ink((1.0, 1.0, 0.6)) == "black"
    assert hl.cell_text(0.876) == "0.88" and hl.cell_text(float("nan")) == ""
    assert hl.cell_text(-0.001) == "0.00"
    assert hl.tick_step(512, 50) == 11


# -- real pictures ----------------------------------------------------------------------------------
def test_summary_sheets_of_every_rank(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "vector": rng.normal(size=(40, 30)),
        "sequence": rng.normal(size=(40, 12, 6)),
        "maps": np.maximum(rng.normal(size=(30, 6, 6, 80)), 0),
        "volume": rng.normal(size=(20, 3, 5, 5, 7)),
    }
    cases["maps"][..., [2, 70]] = 0  # dead, one of them past the 64 shown channels
    cases["vector"][:, 4] = -1.0  # dead
    for name, data in cases.items():
        path = tmp_path / name / "summary.png"
        result = analysis_result(data)
        draw_summary(result, f"block/{name}", data.shape[1:], path, epoch=1)
        pixels = assert_picture(path, 1200, 800)
        if result["dead"].any():
            assert red_pixels(pixels) > 40, name
        else:
            assert red_pixels(pixels) == 0, name


def assert_panels_read_back(pixels, images, result) -> None:
    """The summary's three maps: each pixel of each panel is its statistic's stored value
    (laid out by render's rules, ``maps.panel_image``) on the panel's scale; NaN is white."""
    assert len(images) == 3
    for (extent, shape), key in zip(images, ("mean", "std", "frac_positive"), strict=True):
        image = maps.panel_image(np.asarray(result[key]))
        assert shape == image.shape, key
        finite = image[np.isfinite(image)]
        if key == "frac_positive":
            limits = (0.0, 1.0)
        elif finite.size:
            limits = (float(finite.min()), float(finite.max()))
        else:
            limits = (0.0, 1.0)  # nothing to scale: every pixel is blank anyway
        assert_cells_read_back(pixels, extent, image, "viridis", limits, (255, 255, 255))


def test_summary_with_nan_stats_and_no_finite_value(tmp_path, drawn):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(25, 4, 4, 6))
    data[..., 1] = np.nan  # a channel with no finite value at all
    data[3, 0, 0, 0] = np.inf
    result = analysis_result(data)
    assert np.isnan(result["channel_mean"][1]) and result["nonfinite"] > 0
    draw_summary(result, "nan_layer", data.shape[1:], tmp_path / "nan.png")
    pixels = assert_picture(tmp_path / "nan.png", 1200, 800)
    assert_panels_read_back(pixels, drawn[tmp_path / "nan.png"], result)
    empty = analysis_result(np.full((5, 8), np.nan))
    draw_summary(empty, "all_nan", (8,), tmp_path / "empty.png", patterns=5)
    pixels = read_png(tmp_path / "empty.png")
    assert pixels.shape[:2] == (1000, 1600)
    assert_panels_read_back(pixels, drawn[tmp_path / "empty.png"], empty)


def test_top_sheet_with_fewer_patterns_than_k(tmp_path):
    rng = np.random.default_rng(3)
    out = rng.normal(size=(5, 8, 8, 70))
    result = analysis_result(out, k=9)
    assert (result["top_index"][:, 5:] == -1).all()
    path = tmp_path / "top.png"
    calls = []

    def thumbnail(i):
        calls.append(i)
        return out[i]

    draw_top(result, "conv", thumbnail, "layer output", path)
    assert sorted(calls) == list(range(5))  # each pattern asked for once
    pixels = assert_picture(path, 600, 600)
    lay = thumbs.top_layout(64, 9, thumbs.shown_size(8, 8))
    assert pixels.shape[:2] == lay.size
    y, x = lay.origin(0, 7)  # no 8th pattern: the missing ground
    assert np.all(pixels[y : y + lay.cell[0], x : x + lay.cell[1]] == thumbs.MISSING)
    y, x = lay.origin(0, 0)
    assert colours(pixels[y : y + lay.cell[0], x : x + lay.cell[1]]) > 8


def test_top_sheet_of_rgb_inputs_shows_their_colours(tmp_path):
    rng = np.random.default_rng(4)
    acts = rng.normal(size=(30, 4))
    images = rng.integers(0, 256, (30, 50, 50, 3)).astype(np.uint8)
    result = analysis_result(acts, k=3)
    path = tmp_path / "top_rgb.png"
    missing = int(result["top_index"][1, 1])
    draw_top(result, "dense", lambda i: None if i == missing else images[i], "input", path)
    pixels = assert_picture(path, 200, 200)
    lay = thumbs.top_layout(4, 3, (50, 50))
    for c in range(4):
        for j in range(3):
            i = int(result["top_index"][c, j])
            y, x = lay.origin(c, j)
            cell = pixels[y : y + 50, x : x + 50]
            expect = np.full((50, 50, 3), thumbs.MISSING, np.uint8) if i == missing else images[i]
            np.testing.assert_array_equal(cell, expect)


def test_top_sheet_speed_and_kind(tmp_path):
    rng = np.random.default_rng(5)
    result = analysis_result(rng.normal(size=(600, 64)))
    inputs = rng.random((600, 50, 50)).astype(np.float32)
    start = time.perf_counter()
    draw_top(result, "dense", lambda i: inputs[i], "input", tmp_path / "speed.png")
    log.info("top sheet of 64 x 9 thumbnails 50x50: %.3f s", time.perf_counter() - start)
    assert_picture(tmp_path / "speed.png", 1000, 1000)
    with pytest.raises(ConfigError, match="expected one of"):
        draw_top(result, "dense", lambda i: inputs[i], "pattern", tmp_path / "bad.png")


def test_cka_heatmaps(tmp_path, drawn):
    rng = np.random.default_rng(6)
    names = [f"backbone/stage_{i // 5}/residual_block_{i}/conv2d_with_long_name" for i in range(30)]
    f = np.cumsum(rng.normal(size=(30, 12)), 0)
    g = f @ f.T
    d = np.sqrt(np.diag(g))
    cka = np.abs(g / d[:, None] / d[None, :])
    grey = (0xDD, 0xDD, 0xDD)  # the heatmaps' colour of a missing value
    draw_cka(names, names, cka, tmp_path / "cka.png")
    pixels = assert_picture(tmp_path / "cka.png", 1200, 1200)
    assert pixels.shape[0] < 4000 and pixels.shape[1] < 4000
    ((extent, shape),) = drawn[tmp_path / "cka.png"]
    assert shape == (30, 30)
    assert_cells_read_back(pixels, extent, cka, "magma", (0.0, 1.0), grey)
    draw_cross_cka(names[:4], names[:6], cka[:4, :6], tmp_path / "cross.png", "runs/a", "runs/b")
    pixels = assert_picture(tmp_path / "cross.png", 400, 300)
    ((extent, _),) = drawn[tmp_path / "cross.png"]
    assert_cells_read_back(pixels, extent, cka[:4, :6], "magma", (0.0, 1.0), grey)
    epochs = np.clip(cka[:5, :8], 0, 1)
    epochs[:, -1] = 1.0
    epochs[2, 3] = np.nan
    draw_epoch_cka(names[:5], list(range(8)), epochs, tmp_path / "epochs.png")
    pixels = assert_picture(tmp_path / "epochs.png", 500, 300)
    ((extent, _),) = drawn[tmp_path / "epochs.png"]
    assert_cells_read_back(pixels, extent, epochs, "magma", (0.0, 1.0), grey)
    with pytest.raises(ConfigError, match=r"expected shape \(2, 3\)"):
        draw_cka(names[:2], names[:3], cka[:3, :3], tmp_path / "bad.png")


def test_class_heatmaps(tmp_path, drawn):
    rng = np.random.default_rng(7)
    acts = rng.normal(size=(200, 16))
    labels = rng.integers(0, 5, 200)
    result = analysis_result(acts, labels=labels)
    means = result["class_channel_mean"]
    assert means.min() < 0 < means.max()  # both signs: a diverging scale centred on 0
    draw_classes(result["classes"], None, means, tmp_path / "c.png")
    pixels = assert_picture(tmp_path / "c.png", 500, 300)
    ((extent, shape),) = drawn[tmp_path / "c.png"]
    assert shape == (5, 16)
    top = float(np.abs(means).max())
    assert_cells_read_back(pixels, extent, means, "RdBu_r", (-top, top), (0xDD,) * 3)
    wide = np.abs(rng.normal(size=(10, 512)))
    names = [f"class {c}" for c in "abcdefghij"]
    draw_classes(np.arange(10), names, wide, tmp_path / "wide.png", layer="conv")
    pixels = assert_picture(tmp_path / "wide.png", 1200, 400)
    assert pixels.shape[1] < 2600
    ((extent, shape),) = drawn[tmp_path / "wide.png"]
    assert shape == (10, 512)
    limits = (float(wide.min()), float(wide.max()))  # one sign: viridis over the range
    assert_cells_read_back(pixels, extent, wide, "viridis", limits, (0xDD,) * 3)
