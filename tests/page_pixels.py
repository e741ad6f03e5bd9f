"""Where things sit on a drawn page, and what colour index a value must get there: the
helpers tests use to read a picture back instead of counting its pixels.

``page_geometry`` asks matplotlib's own page painter (``PagePainter``, the drawing the raster
painter copies) where it puts each cell's image, title, tick labels, value line and channel
labels; ``pixel_centres`` gives the page pixel at the centre of every image pixel;
``expected_levels`` is the raster page's colour contract written out independently
(``vmin`` -> level 0, ``vmax`` -> the last level, equal steps, values beyond clipped, NaN the
bad entry); ``colormap_value`` reads a colour back through a matplotlib colormap (all its
entries), ``sampled_levels`` through the raster page's levels of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

if TYPE_CHECKING:
    from pipeline.rendering.cells import Cell, GridOptions

Box = tuple[int, int, int, int]  # (row0, row1, col0, col1): page rows/cols, end exclusive
Extent = tuple[float, float, float, float]  # (x0, y0, x1, y1) in display pixels, y upwards


@dataclass
class PageGeometry:
    height: int
    images: list[Extent | None]  # per cell: where its image is drawn
    titles: list[Box | None]  # per cell: its title
    ticks: list[list[Box]] = field(default_factory=list)  # per cell: its tick labels with text
    captions: list[Box | None] = field(default_factory=list)  # per cell: its value line
    notes: list[Box | None] = field(default_factory=list)  # per cell: its note
    labels: list[list[Box]] = field(default_factory=list)  # per cell: its channel label boxes

    @property
    def strip(self) -> int:
        """The rows above every cell title: the suptitle's strip."""
        return min(b[0] for b in self.titles if b is not None)


def to_box(extents: Sequence[float], height: int, margin: int = 1) -> Box:
    """Display extents (x0, y0, x1, y1) as the page pixels they touch, ``margin`` pixels wider
    (anti-aliasing reaches one pixel past an artist's extent)."""
    x0, y0, x1, y1 = extents
    return (
        max(int(np.floor(height - y1)) - margin, 0),
        int(np.ceil(height - y0)) + margin,
        max(int(np.floor(x0)) - margin, 0),
        int(np.ceil(x1)) + margin,
    )


def page_geometry(
    opts: GridOptions, cells: Sequence[Cell | None], suptitle: str | None = "pattern 0"
) -> PageGeometry:
    """Where matplotlib's ``PagePainter`` draws each part of a page of ``cells``."""
    from pipeline.rendering.grids import PagePainter

    painter = PagePainter(opts)
    try:
        padded = painter.arrange(cells, suptitle)
        canvas = painter.fig.canvas
        canvas.draw()
        renderer = canvas.get_renderer()
        height = int(painter.fig.bbox.height)
        geo = PageGeometry(height, [], [])
        for i, (ax, cell) in enumerate(zip(painter.axes, padded, strict=True)):
            if cell is None or not ax.get_visible():
                geo.images.append(None)
                geo.titles.append(None)
                geo.ticks.append([])
                geo.captions.append(None)
                geo.notes.append(None)
                geo.labels.append([])
                continue
            geo.images.append(tuple(ax.get_window_extent(renderer).extents))
            geo.titles.append(to_box(ax.title.get_window_extent(renderer).extents, height))
            geo.ticks.append(
                [
                    to_box(t.get_window_extent(renderer).extents, height)
                    for t in ax.get_xticklabels() + ax.get_yticklabels()
                    if t.get_visible() and t.get_text() and _inside(t, ax)
                ]
            )
            for boxes, text in ((geo.captions, painter.captions[i]), (geo.notes, painter.notes[i])):
                boxes.append(
                    None
                    if text is None or not text.get_visible()
                    else to_box(text.get_window_extent(renderer).extents, height)
                )
            geo.labels.append(
                [
                    to_box(t.get_bbox_patch().get_window_extent(renderer).extents, height)
                    for t in painter.label_artists[i]
                    if t.get_visible()
                ]
            )
        return geo
    finally:
        painter.fig.clear()


def _inside(tick: Any, ax: Any) -> bool:
    """Whether a tick label is drawn: matplotlib keeps labels of ticks past the limits but
    does not draw them."""
    lo, hi = sorted(ax.get_xlim() if tick in ax.get_xticklabels() else ax.get_ylim())
    x, y = tick.get_position()
    value = x if tick in ax.get_xticklabels() else y
    return lo - 1e-9 <= value <= hi + 1e-9


FRAME = 2.5  # the axes frame (0.8 pt, 1.1 px, snapped to whole pixels) and its anti-aliased rim


def pixel_centres(
    extent: Extent, shape: tuple[int, ...], height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, clear): the page row of the centre of each image row, the page column of
    the centre of each image column, for an image of ``shape`` drawn over ``extent``; and
    (h, w) bool, which of those centres lie clear of the frame drawn over the image's edge."""
    x0, y0, x1, y1 = extent
    h, w = shape[:2]
    top = height - y1
    r = top + (np.arange(h) + 0.5) * (y1 - y0) / h
    c = x0 + (np.arange(w) + 0.5) * (x1 - x0) / w
    clear_r = (r - top >= FRAME) & (top + (y1 - y0) - r >= FRAME)
    clear_c = (c - x0 >= FRAME) & (x1 - c >= FRAME)
    return r.astype(int), c.astype(int), clear_r[:, None] & clear_c[None, :]


def expected_levels(
    values: np.ndarray, vmin: float, vmax: float, levels: int, bad: int
) -> np.ndarray:
    """The colormap level each value must be drawn with: ``levels`` equal steps from ``vmin``
    to ``vmax`` (a value at a step's start belongs to it), values beyond clipped to the ends,
    NaN and inf the ``bad`` entry."""
    v = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        k = np.floor((v - vmin) / (vmax - vmin) * levels)
    k = np.clip(np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0), 0, levels - 1).astype(int)
    return np.where(np.isfinite(v), k, bad)


def inside_any(rows: np.ndarray, cols: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """(len(rows), len(cols)) bool: which grid points lie in any of ``boxes``."""
    r, c = np.meshgrid(rows, cols, indexing="ij")
    out = np.zeros(r.shape, bool)
    for r0, r1, c0, c1 in boxes:
        out |= (r >= r0) & (r < r1) & (c >= c0) & (c < c1)
    return out


def colormap_lut(name: str) -> np.ndarray:
    """(N, 3) uint8: every entry of matplotlib's colormap ``name``, as it paints them."""
    cmap = matplotlib.colormaps[name]
    return cmap(np.arange(cmap.N), bytes=True)[:, :3]


def colormap_value(
    rgb: np.ndarray, name: str, vmin: float, vmax: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read colours back through colormap ``name`` over [vmin, vmax]: (low, high, distance),
    the value range of the entries nearest each colour (adjacent entries may hold the same
    colour: their ranges together) and how far the colour is from them (0: painted by the
    colormap). The colormap paints value v with the entry whose range holds v, so a colour
    painted for v reads back as a range holding v, one entry (or a few equal ones) wide."""
    lut = colormap_lut(name).astype(np.int32)
    flat = np.asarray(rgb, np.int32).reshape(-1, 3)
    dist = np.abs(flat[:, None, :] - lut[None, :, :]).max(axis=2)
    nearest = dist.min(axis=1)
    match = dist == nearest[:, None]
    first = match.argmax(axis=1)
    last = len(lut) - 1 - match[:, ::-1].argmax(axis=1)
    step = (vmax - vmin) / len(lut)
    shape = np.shape(rgb)[:-1]
    low = (vmin + first * step).reshape(shape)
    high = (vmin + (last + 1) * step).reshape(shape)
    return low, high, nearest.reshape(shape)


def sampled_levels(rgb: np.ndarray, name: str, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Read colours back to the levels of colormap ``name`` sampled at ``levels`` centres (the
    raster page's palette): (level, distance to it); a colour the colormap painted reads
    back at distance 0."""
    cmap = matplotlib.colormaps[name]
    lut = cmap((np.arange(levels) + 0.5) / levels, bytes=True)[:, :3].astype(np.int32)
    flat = np.asarray(rgb, np.int32).reshape(-1, 3)
    dist = np.abs(flat[:, None, :] - lut[None, :, :]).max(axis=2)
    shape = np.shape(rgb)[:-1]
    return dist.argmin(axis=1).reshape(shape), dist.min(axis=1).reshape(shape)
