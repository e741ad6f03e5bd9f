"""Raster grid pages look like the matplotlib pages of the same cells (channel mosaics with
their labels, value lines and notes, RGB input pictures included); pages it cannot draw
(marked cells) fall back to matplotlib; the pure index math and the PNG encoder, directly."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from page_pixels import (
    PageGeometry,
    expected_levels,
    inside_any,
    page_geometry,
    pixel_centres,
)
from PIL import Image

from pipeline.rendering import layout, raster
from pipeline.rendering import palette as pal
from pipeline.rendering.cells import Cell, GridOptions, data_cell
from pipeline.rendering.grids import PagePainter
from pipeline.rendering.input_cells import input_image, rgb_scale

# The static page's greys go into the palette exactly when they fit, else to the nearest entry
# of an even grey ramp (``palette.fit_palette``): half a ramp step, 255 / 31 / 2 per channel
# of a grey, at most sqrt(3) times that for the nearest colour by distance.
GREY_STEP = 8


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


def _index(path) -> tuple[np.ndarray, np.ndarray]:
    """(palette indices, (256, 3) palette) of a palette page."""
    with Image.open(path) as png:
        assert png.mode == "P"
        return np.asarray(png), np.asarray(png.getpalette(), np.uint8).reshape(-1, 3)


def _limits(cell: Cell) -> tuple[float, float]:
    """The colour scale a cell asks for; without one, its finite values' range."""
    if cell.vmin is not None and cell.vmax is not None:
        return cell.vmin, cell.vmax
    picture = cell.picture()
    return float(np.nanmin(picture)), float(np.nanmax(picture))


def assert_image_levels(index: np.ndarray, geo: PageGeometry, i: int, cell: Cell) -> None:
    """At the centre of every pixel of cell ``i``'s image, the raster page holds exactly the
    colormap level the contract gives its value (``expected_levels``); a constant cell is blank
    (the bad entry) around its note. Left out: a mosaic's padding (static blank) and the pixels
    under a channel label's box or the note, and those the frame covers."""
    picture = cell.picture()
    assert picture is not None and geo.images[i] is not None
    rows, cols, clear = pixel_centres(geo.images[i], picture.shape[:2], geo.height)
    got = index[np.ix_(rows, cols)].astype(int)
    if cell.note is not None:
        want = np.full(picture.shape, raster.BAD)
    else:
        want = expected_levels(picture, *_limits(cell), raster.LEVELS, raster.BAD)
    covered = inside_any(rows, cols, geo.labels[i] + [b for b in [geo.notes[i]] if b is not None])
    skip = covered | ~clear
    if cell.tiles is None:
        assert skip.mean() < 0.2, f"cell {i}: {skip.mean():.0%} of its pixels left out"
    else:  # every tile's centre is compared: tiles drawn in another order fail
        h, w, c = cell.tiles.shape
        for k, (y, x) in enumerate(layout.tile_origins((h, w, c), cell.max_tiles)):
            assert not skip[y + h // 2, x + w // 2], f"cell {i}: tile {k}'s centre left out"
        skip |= np.isnan(layout.channel_mosaic(np.zeros_like(cell.tiles), cell.max_tiles))
    wrong = (got != want) & ~skip
    where = np.argwhere(wrong)[:3].tolist()
    assert not wrong.any(), (
        f"cell {i} ({cell.title!r}): {wrong.sum()} of {wrong.size} pixels at another level, "
        f"e.g. image pixels {where}: drawn {[got[r, c] for r, c in where]}, "
        f"expected {[want[r, c] for r, c in where]}"
    )


def assert_texts_alike(fast: np.ndarray, slow: np.ndarray, geo: PageGeometry) -> int:
    """Inside every title and tick label box the two pages are the same picture (the raster
    page's greys within ``GREY_STEP``) and the matplotlib page has ink there; a missing, moved
    or other text differs by whole grey levels. Value lines are composed from glyphs at
    another sub-pixel phase (``test_value_lines_and_constant_note``): their boxes are left
    out. Returns the boxes compared."""
    boxes = [("title", b) for b in geo.titles if b is not None]
    boxes += [("tick label", b) for ticks in geo.ticks for b in ticks]
    composed = np.zeros(fast.shape[:2], bool)
    for r0, r1, c0, c1 in filter(None, geo.captions):
        composed[r0:r1, c0:c1] = True
    for what, (r0, r1, c0, c1) in boxes:
        a, b = fast[r0:r1, c0:c1], slow[r0:r1, c0:c1]
        assert (b.max(axis=2) < 128).sum() >= 3, f"no ink in the {what} box {(r0, r1, c0, c1)}"
        diff = int(np.where(composed[r0:r1, c0:c1], 0, np.abs(a - b).max(axis=2)).max())
        assert diff <= GREY_STEP, f"{what} box {(r0, r1, c0, c1)}: pages differ by {diff}"
    return len(boxes)


def assert_suptitle_alike(fast: np.ndarray, slow: np.ndarray, strip: int) -> None:
    """The suptitle, in the strip above the cell titles: composed from matplotlib's glyphs at
    the place matplotlib puts it, so its ink lies within one pixel of matplotlib's and
    overlaps it once that pixel is allowed for."""
    ink_fast, ink_slow = fast[:strip].max(axis=2) < 128, slow[:strip].max(axis=2) < 128
    assert ink_slow.sum() > 100 and ink_fast.sum() > 100, (ink_fast.sum(), ink_slow.sum())
    rf, cf = np.nonzero(ink_fast)
    rs, cs = np.nonzero(ink_slow)
    for ours, theirs in ((rf.min(), rs.min()), (rf.max(), rs.max()), (cf.min(), cs.min())):
        assert abs(int(ours) - int(theirs)) <= 1, (ours, theirs)
    assert abs(int(cf.max()) - int(cs.max())) <= 1
    best = max(
        (np.roll(ink_fast, (dr, dc), axis=(0, 1)) & ink_slow).sum()
        / (np.roll(ink_fast, (dr, dc), axis=(0, 1)) | ink_slow).sum()
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
    )
    assert best > 0.5, f"suptitle ink overlaps {best:.2f} at best"


@pytest.mark.parametrize("seed", [1, 2])
def test_raster_page_looks_like_the_matplotlib_page(tmp_path, seed):
    cells = _cells(seed)
    fast, slow = _pair(tmp_path, cells)
    assert fast.shape == slow.shape == (1000, 1000, 3)
    geo = page_geometry(GridOptions(rows=2, cols=2), cells, "pattern 7")
    assert assert_texts_alike(fast, slow, geo) > 30
    assert_suptitle_alike(fast, slow, geo.strip)
    index, palette = _index(tmp_path / "fast.png")
    for i, cell in enumerate(cells):
        assert_image_levels(index, geo, i, cell)
    # the levels are the colormap sampled at their centres, in matplotlib's bytes
    centres = (np.arange(raster.LEVELS) + 0.5) / raster.LEVELS
    lut = matplotlib.colormaps["viridis"](centres, bytes=True)[:, :3]
    assert np.array_equal(palette[: raster.LEVELS], lut)
    # and nothing stray elsewhere: the rest of the page (frames, blank paper) as matplotlib's,
    # but for the images' colours (192 levels against matplotlib's 256) and anti-aliased rims
    assert (np.abs(fast - slow).max(axis=2) <= 24).mean() >= 0.99


def test_titles_and_ticks_are_drawn(tmp_path):
    cells, title = _cells(3), "pattern 123 (cat.png), epoch 4"
    fast, slow = _pair(tmp_path, cells, title=title)
    geo = page_geometry(GridOptions(rows=2, cols=2), cells, title)
    assert sum(len(t) for t in geo.ticks) > 30
    assert assert_texts_alike(fast, slow, geo) > 30
    assert_suptitle_alike(fast, slow, geo.strip)


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
    geo = page_geometry(GridOptions(rows=2, cols=2), cells, "pattern 7")
    assert_texts_alike(fast, slow, geo)
    assert_image_levels(_index(tmp_path / "fast.png")[0], geo, 0, cells[0])
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


def test_damaged_cells_fall_back_to_matplotlib(tmp_path):
    ok = _cells(1)
    damaged = [*ok[:2], Cell("c (50, 25)", problem="data missing or damaged")]
    labelled = [ok[0], Cell("m (3, 3, 4)", image=ok[1].image, labels=((0, 0, "0"),))]
    assert raster.supports(ok) and raster.supports([ok[0], None])
    assert not raster.supports(damaged)
    assert raster.supports(labelled)  # channel labels are part of the static page
    assert not raster.supports([Cell("a", image=ok[0].image, caption="min 0, max 1 \u2013")])
    long_strip = Cell("v (70000,)", image=np.zeros((1, 70_000), np.float32))
    assert not raster.supports([long_strip])  # more columns than the probe colours encode


def test_painters_are_kept_per_options():
    opts = GridOptions(rows=2, cols=2)
    assert raster.painter(opts) is raster.painter(GridOptions(rows=2, cols=2))
    assert raster.painter(opts) is not raster.painter(GridOptions(rows=3, cols=3))


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


# -- channel mosaics, value lines, notes ---------------------------------------------------------
def _mosaic_cells(seed: int, opts: GridOptions) -> list[Cell | None]:
    """Cells as render makes them: three channel maps (one with more channels than shown), a
    2-D output and a constant vector."""
    rng = np.random.default_rng(seed)
    outputs = {
        "block_1_expand_relu": rng.normal(size=(12, 12, 20)).astype(np.float32),
        "conv (8, 8, 70)": rng.random((8, 8, 70), dtype=np.float32),
        "expanded_conv_depthwise_BN": rng.normal(size=(16, 16, 4)).astype(np.float32),
        "dense": rng.random((20, 30), dtype=np.float32),
        "predictions": np.full(10, 0.25, np.float32),
    }
    return [data_cell(name, data, opts) for name, data in outputs.items()]


def _dark(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(axis=2) < 100


def test_mosaic_page_looks_like_the_matplotlib_page(tmp_path):
    opts = GridOptions(rows=2, cols=3)
    cells = _mosaic_cells(1, opts)
    assert raster.supports(cells) and all(c.tiles is not None for c in cells[:3])
    fast, slow = _pair(tmp_path, cells, opts=opts)
    geo = page_geometry(opts, cells, "pattern 7")
    assert_texts_alike(fast, slow, geo)
    assert_suptitle_alike(fast, slow, geo.strip)
    index, _ = _index(tmp_path / "fast.png")
    for i, cell in enumerate(cells):  # each tile's pixels at their own channel's values
        assert_image_levels(index, geo, i, cell)
    # the channel labels: white digits on black boxes, where matplotlib puts them, on both
    labels = [b for boxes in geo.labels[:3] for b in boxes]
    assert len(labels) == 20 + 64 + 4
    for r0, r1, c0, c1 in labels:  # inside the box (its anti-aliased rim shows the image)
        inner = (slice(r0 + 2, r1 - 2), slice(c0 + 2, c1 - 2))
        for page in (fast, slow):
            assert (page[inner].max(axis=2) < 60).mean() > 0.3
            assert (page[inner].min(axis=2) > 200).any()
        diff = np.abs(fast[inner] - slow[inner])
        assert diff.max() <= GREY_STEP


def test_value_lines_and_constant_note(tmp_path):
    """Each cell's value range sits between its title and its image, in both paths, and a
    constant output is a white cell that says so."""
    opts = GridOptions(rows=2, cols=3)
    cells = _mosaic_cells(2, opts)
    constant = cells[4]
    assert constant.note == "constant 0.25" and constant.caption == "min 0.25, max 0.25"
    assert cells[3].note is None and cells[3].caption.startswith("min ")
    fast, slow = _pair(tmp_path, cells, opts=opts)
    painter = PagePainter(opts)
    try:
        painter.arrange(cells)
        painter.fig.canvas.draw()
        renderer = painter.fig.canvas.get_renderer()
        boxes = {
            name: [a.get_window_extent(renderer).extents for a in artists if a is not None]
            for name, artists in (("caption", painter.captions), ("note", painter.notes))
        }
        axes = [ax.get_window_extent().extents for ax in painter.axes]
        titles = [ax.title.get_window_extent(renderer).extents for ax in painter.axes]
    finally:
        painter.fig.clear()
    assert len(boxes["caption"]) == 5 and len(boxes["note"]) == 1
    height = fast.shape[0]
    for (x0, y0, x1, y1), (_, _, _, ay1), (_, ty0, _, _) in zip(
        boxes["caption"], axes, titles, strict=False
    ):
        assert ay1 <= y0 and y1 <= ty0  # above the image, under the title
        rows = slice(int(height - y1), int(np.ceil(height - y0)))
        cols = slice(int(x0), int(np.ceil(x1)))
        # ink: any pixel darker than the paper (the two may anti-alias at other sub-pixel phases)
        ink_fast = fast[rows, cols].max(axis=2) < 200
        ink_slow = slow[rows, cols].max(axis=2) < 200
        assert ink_slow.sum() > 30 and ink_fast.sum() > 30  # the same extent within 2 px:
        rf, cf = np.nonzero(ink_fast)
        rs, cs = np.nonzero(ink_slow)
        assert abs(rf.min() - rs.min()) <= 2 and abs(cf.min() - cs.min()) <= 2
        assert abs(cf.max() - cs.max()) <= 2
    # the constant vector: its image area is white but for the note, centred in both
    x0, y0, x1, y1 = axes[4]
    inner = (slice(int(height - y1) + 3, int(height - y0) - 3), slice(int(x0) + 3, int(x1) - 3))
    for page in (fast, slow):
        area = page[inner]
        ink = _dark(area)
        assert (area.min(axis=2) == 255).mean() > 0.9 and ink.sum() > 50
        r, c = np.nonzero(ink)
        assert abs((r.min() + r.max()) / 2 - area.shape[0] / 2) < 4
        assert abs((c.min() + c.max()) / 2 - area.shape[1] / 2) < 4


def test_raster_mosaic_pixels_are_the_channel_values(tmp_path):
    """Inside a mosaic tile the raster page shows each channel's own value: a map whose channel
    k is constant k is drawn tile by tile at k's colormap level, each tile where matplotlib
    puts channel k (a page with two tiles swapped fails at their centres)."""
    opts = GridOptions(rows=1, cols=1)
    data = np.broadcast_to(np.arange(9, dtype=np.float32), (40, 40, 9)).copy()
    cell = data_cell("steps", data, opts)
    painter = raster.RasterPainter(opts)
    try:
        painter.draw([cell], tmp_path / "p.png", "pattern 0")
    finally:
        painter.close()
    index, _ = _index(tmp_path / "p.png")
    geo = page_geometry(opts, [cell], "pattern 0")
    rows, cols, _ = pixel_centres(geo.images[0], cell.shape, geo.height)
    for k, (y, x) in enumerate(layout.tile_origins(data.shape)):
        centre = index[rows[y + 20], cols[x + 20]]
        assert centre == min(int(k / 8 * raster.LEVELS), raster.LEVELS - 1), k
    assert_image_levels(index, geo, 0, cell)


def test_channel_scale_spans_the_colormap_per_tile(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(20, 20, 4)).astype(np.float32) * np.array(
        [1, 10, 100, 0.01], np.float32
    )
    opts = GridOptions(rows=1, cols=1, scale="channel")
    cell = data_cell("conv", data, opts)
    assert "color scale per channel" in cell.title and (cell.vmin, cell.vmax) == (0.0, 1.0)
    lo, hi = float(data.min()), float(data.max())
    assert cell.caption == f"min {lo:.4g}, max {hi:.4g}"  # the layer's range, as with one scale
    picture = cell.picture()
    for k, (y, x) in enumerate(layout.tile_origins(data.shape)):
        tile = picture[y : y + 20, x : x + 20]
        assert tile.min() == pytest.approx(0.0) and tile.max() == pytest.approx(1.0), k
    fast, slow = _pair(tmp_path, [cell], opts=opts)
    geo = page_geometry(opts, [cell], "pattern 7")
    assert_texts_alike(fast, slow, geo)
    assert_image_levels(_index(tmp_path / "fast.png")[0], geo, 0, cell)


# -- RGB input cells: RGB pages ------------------------------------------------------------------
def _picture(seed: int) -> np.ndarray:
    """A (24, 32, 3) uint8 picture of distinct colours, as --keep-inputs stores one."""
    rng = np.random.default_rng(seed)
    colors = rng.choice(256**3, 24 * 32, replace=False)
    rgb = np.stack([colors >> 16, (colors >> 8) & 255, colors & 255], axis=1)
    return rgb.astype(np.uint8).reshape(24, 32, 3)


def _input_page(picture: np.ndarray, opts: GridOptions) -> list[Cell | None]:
    """An RGB input cell (built as ``input_cells.input_cell`` builds it), a 2-D output and a
    channel mosaic."""
    scale = rgb_scale(picture.shape, "uint8", 0.0, 255.0)
    image = input_image(picture, scale)
    rng = np.random.default_rng(int(picture[0, 0, 0]))
    return [
        Cell("input picture (24, 32, 3)", image=image, vmin=0.0, vmax=1.0),
        data_cell("dense", rng.random((50, 75), dtype=np.float32), opts),
        data_cell("conv", rng.normal(size=(12, 12, 6)).astype(np.float32), opts),
    ]


def _image_box(opts: GridOptions, cells: list[Cell | None], i: int) -> tuple[float, ...]:
    """Where matplotlib puts cell ``i``'s image: (x0, y0, x1, y1) in display pixels."""
    painter = PagePainter(opts)
    try:
        painter.arrange(cells, "pattern 0")
        painter.fig.canvas.draw()
        return tuple(painter.axes[i].get_window_extent().extents)
    finally:
        painter.fig.clear()


def test_rgb_input_page_is_drawn_by_the_raster_painter_like_matplotlib(tmp_path):
    opts = GridOptions(rows=2, cols=2)
    picture = _picture(1)
    cells = _input_page(picture, opts)
    assert cells[0].rgb and not any(c.rgb for c in cells[1:])
    assert raster.supports(cells)
    fast, slow = _pair(tmp_path, cells, opts=opts)
    with Image.open(tmp_path / "fast.png") as png:
        assert png.mode == "RGB"
    close = np.abs(fast - slow).max(axis=2) <= 24
    assert close.mean() >= 0.99, f"{close.mean():.4f} of pixels alike"
    # Inside the picture, the two pages agree exactly but for the frame's anti-aliased rim.
    x0, y0, x1, y1 = _image_box(opts, cells, 0)
    height = fast.shape[0]
    inner = (slice(int(height - y1) + 2, int(height - y0) - 2), slice(int(x0) + 2, int(x1) - 2))
    assert (fast[inner] == slow[inner]).all(axis=2).mean() >= 0.99
    # The picture's own colours, each where its pixel is: the centre of picture pixel (i, j).
    h, w, _ = picture.shape
    rows, cols, _ = pixel_centres((x0, y0, x1, y1), (h, w), height)
    assert np.array_equal(fast[np.ix_(rows, cols)], picture.astype(int))
    assert np.array_equal(slow[np.ix_(rows, cols)], picture.astype(int))


def test_pages_without_an_rgb_cell_stay_palette_pages(tmp_path):
    """One painter, one pattern's two pages: the one with the picture is RGB, the other a
    palette page; the next pattern's picture replaces the first one's exactly."""
    opts = GridOptions(rows=1, cols=2)
    painter = raster.RasterPainter(opts)
    one, two = _picture(2), _picture(3)
    try:
        for n, picture in enumerate((one, two)):
            cells = _input_page(picture, opts)
            painter.draw(cells[:2], tmp_path / f"{n}-0.png", f"pattern {n}")
            painter.draw(cells[2:], tmp_path / f"{n}-1.png", f"pattern {n}")
    finally:
        painter.close()
    modes = {}
    for name in ("0-0", "0-1", "1-0", "1-1"):
        with Image.open(tmp_path / f"{name}.png") as png:
            modes[name] = png.mode
    assert modes == {"0-0": "RGB", "0-1": "P", "1-0": "RGB", "1-1": "P"}
    drawn = [{tuple(c) for c in _rgb(tmp_path / f"{n}-0.png").reshape(-1, 3)} for n in (0, 1)]
    for picture, colors, other in ((one, drawn[0], two), (two, drawn[1], one)):
        assert {tuple(c) for c in picture.reshape(-1, 3).tolist()} <= colors
        assert len({tuple(c) for c in other.reshape(-1, 3).tolist()} & colors) < 10


def test_rgb_bytes_are_matplotlibs_colours():
    from matplotlib.cm import ScalarMappable

    rng = np.random.default_rng(5)
    floats = rng.random((7, 9, 3)).astype(np.float32)
    floats[0, :3] = [[0.0, 1.0, 0.5], [1 / 255, 254 / 255, 0.999], [0.004, 0.996, 0.25]]
    ours = pal.rgb_bytes(floats, (255, 255, 255))
    theirs = ScalarMappable().to_rgba(floats, bytes=True)[..., :3]
    assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)
    every = np.arange(256, dtype=np.uint8).reshape(1, -1, 1).repeat(3, axis=2)
    scaled = input_image(every, 255.0)  # a uint8 picture, as render draws it
    assert np.array_equal(pal.rgb_bytes(scaled, (255, 255, 255)), every)
    odd = np.array([[[1.5, -0.5, 0.5], [np.nan, 0.0, 0.0]]], np.float32)
    assert pal.rgb_bytes(odd, (255, 255, 255)).tolist() == [[[255, 0, 127], [255, 255, 255]]]


def test_expand_and_put_colors():
    rng = np.random.default_rng(6)
    index = rng.integers(0, 256, (30, 40)).astype(np.uint8)
    palette = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    rgb = pal.expand(index, palette)
    assert rgb.shape == (30, 40, 3) and rgb.flags.writeable
    assert np.array_equal(rgb, palette[index])
    pos = np.array([0, 5, 1199])
    colors = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.uint8)
    flat = rgb.reshape(-1, 3)
    pal.put_colors(flat, pos, colors)
    assert np.array_equal(flat[pos], colors) and np.array_equal(flat[6], palette[index.flat[6]])


# -- the palette PNG encoder ------------------------------------------------------------------------
def test_png_round_trip_with_noisy_and_calm_bands(tmp_path):
    from pipeline.rendering import png

    rng = np.random.default_rng(0)
    page = np.full((300, 400), 200, np.uint8)
    page[20:140, 10:390] = rng.integers(0, 192, (120, 380))  # noise: stored bands
    page[150:290, 50:350] = np.repeat(np.repeat(rng.integers(0, 192, (14, 30)), 10, 0), 10, 1)
    palette = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    rows = np.arange(300)
    noisy = png.noisy_rows(page, rows)
    assert noisy[30:130].all() and not noisy[150:].any() and not noisy[:15].any()
    png.save_indexed_png(tmp_path / "p.png", page, palette, 100)
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "P" and img.size == (400, 300)
        assert np.array_equal(np.asarray(img), page)
        assert np.array_equal(np.asarray(img.getpalette(), np.uint8).reshape(-1, 3), palette)
        assert round(img.info["dpi"][0]) == 100
    # stored bands cost their bytes, calm ones compress
    assert 120 * 380 < (tmp_path / "p.png").stat().st_size < 140 * 400


def test_rgb_png_round_trip_with_noisy_and_calm_bands(tmp_path):
    from pipeline.rendering import png

    rng = np.random.default_rng(1)
    page = np.full((200, 300, 3), 255, np.uint8)
    page[20:100, 10:290] = rng.integers(0, 256, (80, 280, 3))  # noise: stored bands
    page[120:190, 50:250] = (30, 60, 90)  # one colour: calm
    page[150:190, 50:250, 0] = 31  # a change in one channel only is still a change
    noisy = png.noisy_rows(page, np.arange(200))
    assert noisy[21:100].all() and not noisy[100:].any() and not noisy[:20].any()
    png.save_rgb_png(tmp_path / "p.png", page, 100)
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "RGB" and img.size == (300, 200)
        assert np.array_equal(np.asarray(img), page)
        assert round(img.info["dpi"][0]) == 100
    assert 80 * 280 * 3 < (tmp_path / "p.png").stat().st_size < 100 * 300 * 3


# -- glyphs --------------------------------------------------------------------------------------------
def test_composed_text_matches_matplotlibs_drawing():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pipeline.rendering.glyphs import Anchor, glyph_cache

    fig = Figure(figsize=(4, 1), dpi=100)
    FigureCanvasAgg(fig)
    text = fig.text(0.5, 0.5, "", ha="center", va="baseline", fontsize=8)
    cache = glyph_cache(text.get_fontproperties(), 100)

    def drawn(s: str) -> np.ndarray:
        text.set_text(s)
        fig.canvas.draw()
        return 255 - np.asarray(fig.canvas.buffer_rgba())[..., 1].astype(int)

    reference = "min -0.123, max 4.567"
    anchor = Anchor.calibrate(drawn(reference) > 0, (0, 0), cache, reference)
    assert anchor is not None
    for s in ["min 0, max 1", "min -1.532e-05, max 2.14e+04", "constant 0.001"]:
        ours = np.zeros_like(drawn(s))
        line = cache.line(s)
        r, c = anchor.place(line)
        ours[r : r + line.coverage.shape[0], c : c + line.coverage.shape[1]] = line.coverage
        theirs = drawn(s)
        a, b = ours > 100, theirs > 100
        assert (a & b).sum() / (a | b).sum() > 0.4  # sub-pixel phase apart at most
        ra, ca = np.nonzero(ours > 0)
        rb, cb = np.nonzero(theirs > 0)
        assert abs(ra.min() - rb.min()) <= 1 and abs(ca.min() - cb.min()) <= 1
        assert abs(ca.max() - cb.max()) <= 1
    fig.clear()
