"""What a page layout costs, without changing the page: value-line anchors read from the
reference texts drawn alone (no second full draw), cell maps filled as rectangles (a gather
and a masked copy) with the same pixels as the scatter, and a pattern's pages shared out
over the workers (each builds its own pages' layouts) with the same files as one process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import render
from pipeline.capturing.stream import capture_model
from pipeline.config import CaptureConfig, Config, SelectConfig
from pipeline.rendering import layout, raster
from pipeline.rendering import raster_probe as probe
from pipeline.rendering.cells import Cell, GridOptions, data_cell
from pipeline.rendering.grids import PagePainter


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, seed_model):
    """The article's model, its seed-rule layers (small images, tick labels on)."""
    out = tmp_path_factory.mktemp("layouts") / "run"
    cfg = Config(
        capture=CaptureConfig(out=str(out), patterns="random:2", batch_size=2),
        select=SelectConfig(rule="all"),
    )
    return capture_model(seed_model, cfg, quiet=True)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB")).astype(int)


def _mosaic_cells(opts: GridOptions) -> list[Cell | None]:
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(20, 20, 12)).astype(np.float32)
    maps[3:6, 4:9, 2] = np.nan  # NaN pixels: the bad colour
    return [
        data_cell("conv", maps, opts),
        Cell("plain (30, 50)", image=rng.random((30, 50), dtype=np.float32)),
        data_cell("wide", rng.normal(size=(9, 40, 70)).astype(np.float32), opts),
        None,
    ]


def test_value_lines_sit_where_matplotlib_draws_them(seed_run, tmp_path):
    """Each composed value line covers the columns and top row of matplotlib's own drawing
    of it (the page's tick labels beside it are not taken for its ink)."""
    from pipeline.rendering.cells import ChunkCache, DrawReport, layer_cell

    opts = GridOptions()
    cache, report = ChunkCache(seed_run), DrawReport()
    cells = [layer_cell(cache, name, 0, None, opts, report) for name in seed_run.layers]
    fast, slow = raster.RasterPainter(opts), PagePainter(opts)
    try:
        fast.draw(cells, tmp_path / "fast.png", "pattern 0")
        slow.draw(cells, tmp_path / "slow.png", "pattern 0")
        renderer = slow.fig.canvas.get_renderer()
        extents = [None if t is None else t.get_window_extent(renderer) for t in slow.captions]
    finally:
        fast.close()
        slow.fig.clear()
    a, b = _rgb(tmp_path / "fast.png"), _rgb(tmp_path / "slow.png")
    height = a.shape[0]
    compared = 0
    for ext in filter(None, extents):
        rows = slice(int(height - ext.y1) - 1, int(np.ceil(height - ext.y0)) + 1)
        cols = slice(int(ext.x0) - 1, int(np.ceil(ext.x1)) + 1)
        # ink: clearly darker than the paper (anti-aliased rims differ by a sub-pixel phase)
        rf, cf = np.nonzero(a[rows, cols].max(axis=2) < 200)
        rs, cs = np.nonzero(b[rows, cols].max(axis=2) < 200)
        assert rs.size > 30 and rf.size > 30
        assert rf.min() == rs.min()  # the same top row
        assert abs(cf.min() - cs.min()) <= 1 and abs(cf.max() - cs.max()) <= 1
        compared += 1
    assert compared == sum(c is not None and c.caption is not None for c in cells) > 3


def test_text_anchors_are_those_of_a_full_draw():
    """On a page where nothing else is near the value lines and notes, the anchors read from
    the texts drawn alone are those read from a full draw (images and labels hidden)."""
    opts = GridOptions(rows=2, cols=2)
    cells = _mosaic_cells(opts)
    painter = raster.RasterPainter(opts)
    try:
        mpl = painter.mpl
        shown = probe.placeholders(cells)
        mpl.arrange(shown, None)
        painter.suptitle.hide()
        hidden = [im for im in mpl.images if im is not None] + [
            t for labels in mpl.label_artists for t in labels
        ]
        for artist in hidden:
            artist.set_visible(False)
        mpl.fig.canvas.draw()  # the reference: every text of the page drawn at once
        grey = np.asarray(mpl.fig.canvas.buffer_rgba())[..., 1].copy()
        renderer = mpl.fig.canvas.get_renderer()
        want = []
        for i, cell in enumerate(shown):
            pair = []
            for artist, text, cache in (
                (mpl.captions[i], None if cell is None else cell.caption, painter.captions),
                (mpl.notes[i], None if cell is None else cell.note, painter.notes),
            ):
                if artist is None or text is None:
                    pair.append(None)
                    continue
                r0, r1, c0, c1 = probe._box(artist.get_window_extent(renderer).extents, *grey.shape)
                pair.append(probe.Anchor.calibrate(grey[r0:r1, c0:c1] < 255, (r0, c0), cache, text))
            want.append(tuple(pair))
        for artist in hidden:
            artist.set_visible(True)
        mpl.arrange([None if c is None else replace(c, note=None) for c in shown], None)
        for t in mpl.captions + mpl.notes:
            if t is not None:
                t.set_visible(False)
        mpl.fig.canvas.draw()  # the static page: images and labels where the notes go
        got = probe.text_anchors(mpl, shown, painter.captions, painter.notes)
    finally:
        painter.close()
    assert sum(a is not None for pair in want for a in pair) == 5  # 2 value lines, 3 notes
    assert got == want


@pytest.mark.parametrize(
    ("cells", "workers", "groups"),
    [
        ([9] * 17 + [2], 2, [range(0, 9), range(9, 18)]),
        ([4, 1], 2, [range(0, 2)]),  # too few pages to share
        ([9], 4, [range(0, 1)]),
        ([3, 3, 3, 3, 1], 3, [range(0, 2), range(2, 5)]),
        ([1, 1, 1, 9], 2, [range(0, 3), range(3, 4)]),  # about equal cells, not pages
    ],
)
def test_page_groups(cells, workers, groups):
    assert layout.page_groups(cells, workers) == [tuple(g) for g in groups]


def test_page_groups_cover_every_page_once():
    for n in range(0, 30):
        for workers in (1, 2, 3, 8, 16):
            groups = layout.page_groups([1 + (i * 7) % 9 for i in range(n)], workers)
            assert [p for g in groups for p in g] == list(range(n))
            assert 1 <= len(groups) <= max(1, min(workers, n // layout.PAGES_PER_LANE))
            assert all(g for g in groups) or n == 0


def test_pages_shared_out_over_workers_are_the_same_files(seed_run, tmp_path):
    """Six pages a pattern (1x1 grid) over two workers, each drawing its own pages: the same
    files, byte for byte, as one process drawing them all."""
    one = render(seed_run, tmp_path / "one", grid=(1, 1), workers=1, quiet=True)
    two = render(seed_run, tmp_path / "two", grid=(1, 1), workers=2, quiet=True)
    assert one.pages == two.pages == 12 and not one.problems and not two.problems
    names = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert names == sorted(
        p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.png")
    )
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


@pytest.mark.parametrize("white", [0.0, 0.6, 1.0])
def test_unique_colours_of_a_mostly_white_page(white):
    """The static page's colours counted over the non-white pixels only: what np.unique
    gives over all of them."""
    from pipeline.rendering.raster_compose import WHITE, _unique_codes

    rng = np.random.default_rng(1)
    codes = (rng.integers(0, 3000, 50_000) * 4099).astype(np.int32)
    codes[rng.random(codes.size) < white] = WHITE
    want = np.unique(codes, return_inverse=True, return_counts=True)
    got = _unique_codes(codes)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a.ravel(), b.ravel())
