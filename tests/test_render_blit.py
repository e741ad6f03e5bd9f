"""The blitted page (background kept, only images and suptitle redrawn) has the same pixels
as a page drawn in full, and static changes (a problem cell) redraw the background."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.rendering import layout
from pipeline.rendering.cells import Cell, GridOptions
from pipeline.rendering.grids import PagePainter


def _cells(seed: int, problem: bool = False) -> list[Cell | None]:
    rng = np.random.default_rng(seed)
    cells: list[Cell | None] = [
        # a value line that changes per pattern; on odd seeds a note in place of the image
        Cell(
            "a (50, 75)",
            image=rng.random((50, 75), dtype=np.float32),
            caption=f"min 0, max {seed}",
            note="constant 0.25" if seed % 2 else None,
        ),
        Cell("b (50, 50)", image=rng.random((50, 50), dtype=np.float32), vmin=0.0, vmax=2.0),
        Cell("c (50, 25)", problem="data missing or damaged")
        if problem
        else Cell("c (50, 25)", image=rng.random((50, 25), dtype=np.float32)),
        # a channel mosaic: its tile labels are drawn over the image on every page
        Cell(
            "d (6, 6, 4)",
            image=layout.channel_mosaic(rng.random((6, 6, 4), dtype=np.float32)),
            labels=tuple(layout.channel_labels((6, 6, 4))),
        ),
    ]
    return cells


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def _full_draw(painter: PagePainter) -> np.ndarray:
    """The painter's current page drawn in full, nothing animated (what savefig draws)."""
    for artist in painter.fig.findobj():
        artist.set_animated(False)
    painter.fig.canvas.draw()
    return np.asarray(painter.fig.canvas.buffer_rgba()).copy()


def test_blitted_pages_match_full_draws(tmp_path):
    """A sequence of pages blitted by one painter; each equals a full draw of the same state
    reached by a second painter."""
    opts = GridOptions(rows=2, cols=2)
    blitted, full = PagePainter(opts), PagePainter(opts)
    sequence = [(1, False), (2, False), (3, True), (4, False), (5, False)]
    for i, (seed, problem) in enumerate(sequence):
        blitted.draw(_cells(seed, problem), tmp_path / f"{i}.png", f"pattern {seed}")
        full.draw(_cells(seed, problem), tmp_path / "scratch.png", f"pattern {seed}")
        full._key = None  # its flags are reset below: draw it in full next time too
        assert np.array_equal(_pixels(tmp_path / f"{i}.png"), _full_draw(full)), f"page {i}"
        # the labels are on the page: white text with a black outline inside the mosaic cell
        assert [t.get_text() for t in blitted.label_artists[3]] == ["0", "1", "2", "3"]
    blitted.fig.clear()
    full.fig.clear()
