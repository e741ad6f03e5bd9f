"""Raster grid pages look like the matplotlib pages of the same cells; pages it cannot draw
(marked cells, mosaic labels) fall back to matplotlib; the pure index math, directly."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from pipeline.rendering import palette as pal
from pipeline.rendering import raster
from pipeline.rendering.grids import Cell, GridOptions, PagePainter


def _cells(seed: int) -> list[Cell | None]:
    rng = np.random.default_rng(seed)
    return [
        Cell("a (50, 75)", image=rng.random((50, 75), dtype=np.float32)),
        Cell("b (50, 50)", image=rng.normal(size=(50, 50)).astype(np.float32), vmin=-1, vmax=1),
        Cell("c (50, 25)", image=rng.random((50, 25), dtype=np.float32) * 7 - 3),
    ]


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _pair(tmp_path, cells, title="pattern 7", opts=None):
    """(raster page, matplotlib page) of the same cells, as RGB arrays."""
    opts = opts or GridOptions(rows=2, cols=2)
    fast, slow = raster.RasterPainter(opts), PagePainter(opts)
    try:
        fast.draw(cells, tmp_path / "fast.png", title)
        slow.draw(cells, tmp_path / "slow.png", title)
    finally:
        fast.close()
        slow.fig.clear()
    return _rgb(tmp_path / "fast.png"), _rgb(tmp_path / "slow.png")


@pytest.mark.parametrize("seed", [1, 2])
def test_raster_page_looks_like_the_matplotlib_page(tmp_path, seed):
    fast, slow = _pair(tmp_path, _cells(seed))
    assert fast.shape == slow.shape == (1000, 1000, 3)
    close = np.abs(fast - slow).max(axis=2) <= 24
    assert close.mean() >= 0.99, f"{close.mean():.4f} of pixels alike"
    top = (slow[:60] < 128).any(axis=2)  # the suptitle: dark pixels where matplotlib has them
    assert top.any() and ((fast[:60] < 128).any(axis=2) == top).mean() > 0.99


def test_titles_and_ticks_are_drawn(tmp_path):
    fast, slow = _pair(tmp_path, _cells(3), title="pattern 123 (cat.png), epoch 4")
    dark_fast = fast.max(axis=2) < 100
    dark_slow = slow.max(axis=2) < 100
    assert dark_slow.sum() > 1000
    assert (dark_fast == dark_slow).mean() > 0.995


def test_consecutive_patterns_redraw_images_and_suptitle(tmp_path):
    opts = GridOptions(rows=2, cols=2)
    fast = raster.RasterPainter(opts)
    try:
        for seed in (1, 2):
            fast.draw(_cells(seed), tmp_path / f"{seed}.png", f"pattern {seed}")
            fast.draw(_cells(seed), tmp_path / f"{seed}-again.png", f"pattern {seed}")
    finally:
        fast.close()
    one, again, two = (_rgb(tmp_path / n) for n in ("1.png", "1-again.png", "2.png"))
    assert np.array_equal(one, again)
    assert not np.array_equal(one[:60], two[:60])  # "pattern 1" vs "pattern 2"
    assert not np.array_equal(one[60:], two[60:])


def test_nan_pixels_are_drawn_in_the_bad_colour(tmp_path):
    image = np.full((20, 20), np.nan, np.float32)
    image[:10] = 1.0
    image[0, 0] = 0.0
    cells = [Cell("v (20, 20)", image=image), None, None]
    fast, slow = _pair(tmp_path, cells)
    close = np.abs(fast - slow).max(axis=2) <= 24
    assert close.mean() >= 0.99
    png = Image.open(tmp_path / "fast.png")
    assert png.mode == "P"
    index = np.asarray(png)
    assert (index == raster.BAD).sum() > 1000  # the lower half of the cell
    assert tuple(np.asarray(png.getpalette()[3 * raster.BAD : 3 * raster.BAD + 3])) == (255,) * 3


def test_palette_has_the_expected_size_and_colormap_ends(tmp_path):
    image = np.linspace(-2.0, 5.0, 30 * 30, dtype=np.float32).reshape(30, 30)
    cells = [Cell("v (30, 30)", image=image)]
    _pair(tmp_path, cells)
    png = Image.open(tmp_path / "fast.png")
    colors = np.asarray(png.getpalette(), np.uint8).reshape(-1, 3)
    assert len(colors) == 256
    cmap = matplotlib.colormaps["viridis"]
    ends = cmap([0.0, 1.0], bytes=True)[:, :3].astype(int)
    assert np.abs(colors[0].astype(int) - ends[0]).max() <= 3
    assert np.abs(colors[raster.LEVELS - 1].astype(int) - ends[1]).max() <= 3
    index = np.asarray(png)
    assert (index == 0).any() and (index == raster.LEVELS - 1).any()  # darkest, brightest


def test_damaged_cells_and_mosaics_fall_back_to_matplotlib(tmp_path):
    ok = _cells(1)
    damaged = [*ok[:2], Cell("c (50, 25)", problem="data missing or damaged")]
    labelled = [ok[0], Cell("m (3, 3, 4)", image=ok[1].image, labels=((0, 0, "0"),))]
    assert raster.supports(ok) and raster.supports([ok[0], None])
    assert not raster.supports(damaged)
    assert not raster.supports(labelled)
    long_strip = Cell("v (70000,)", image=np.zeros((1, 70_000), np.float32))
    assert not raster.supports([long_strip])  # more columns than the probe colours encode


def test_painters_are_kept_per_options_and_page():
    opts = GridOptions(rows=2, cols=2)
    assert raster.painter(opts, 0) is raster.painter(GridOptions(rows=2, cols=2), 0)
    assert raster.painter(opts, 0) is not raster.painter(opts, 1)


def test_level_indices():
    image = np.array([[0.0, 0.5, 1.0], [-1.0, 2.0, np.nan], [np.inf, -np.inf, 0.999]])
    out = pal.level_indices(image, 0.0, 1.0, 192, 192)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 96, 191], [0, 191, 192], [192, 192, 191]]
    flat = pal.level_indices(np.ones((2, 2)), 1.0, 1.0, 192, 192)  # no span: the low end
    assert flat.tolist() == [[0, 0], [0, 0]]


def test_probe_colors_round_trip():
    for variant in (0, 1):
        colors = pal.probe_colors(700, variant)
        index, valid = pal.decode_probe(colors, variant)
        assert index.tolist() == list(range(700)) and valid.all()
    white = np.full((1, 3), 255, np.uint8)
    assert not pal.decode_probe(white, 0)[1].any() and not pal.decode_probe(white, 1)[1].any()


def test_pixel_maps_keep_only_pixels_both_encodings_agree_on():
    rows = np.repeat(np.arange(4), 2)  # a 4x2 image drawn 2x larger: 8x4 box
    cols = np.repeat(np.arange(2), 2)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    shots = [
        pal.probe_colors(4, 0)[r],
        pal.probe_colors(4, 1)[r],
        pal.probe_colors(4, 0)[c],
    ]
    shots[0][0, 0] = (0, 0, 0)  # a frame pixel blended over the image
    pos, src_r, src_c = pal.pixel_maps(*shots, (4, 2))
    assert 0 not in pos.tolist() and len(pos) == 8 * 4 - 1
    assert np.array_equal(src_r, r.ravel()[pos]) and np.array_equal(src_c, c.ravel()[pos])


def test_fit_palette_exact_when_it_fits_else_nearest():
    colors = np.array([[255, 255, 255], [0, 0, 0], [128, 128, 128]], np.uint8)
    palette, entry = pal.fit_palette(colors, np.array([10, 5, 1]), 8)
    assert np.array_equal(palette[entry], colors)
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    palette, entry = pal.fit_palette(greys, np.ones(256), 63)
    assert len(palette) == 63
    assert np.abs(palette[entry].astype(int) - greys).max() <= 5  # half a ramp step
    grey = pal.grey_map(palette, 10)
    assert grey[0] == 10 + entry[0] and grey[255] == 10 + entry[255]


def test_titles_outside_ascii_are_drawn_by_matplotlib(tmp_path):
    """Font fallback lives in matplotlib: such a title is left to it, and still drawn."""
    fast, slow = _pair(tmp_path, _cells(4), title="pattern 5 (café.png)")
    top_fast, top_slow = fast[:60].max(axis=2) < 128, slow[:60].max(axis=2) < 128
    assert top_slow.any() and (top_fast == top_slow).mean() > 0.999
