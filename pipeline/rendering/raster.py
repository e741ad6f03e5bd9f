"""Raster grid pages: matplotlib draws a page layout once, numpy fills in every pattern.

For each static layout (same titles, image shapes, channel labels) the page is drawn once
with placeholder images and kept as a palette image; probe draws record which image pixel
lands on which page pixel (pixels under a frame or a channel label stay static). The
reference value lines and notes, drawn alone on a white ground (``draw_artist``, not a second
figure draw), show where matplotlib puts them (``raster_probe`` reads all of that back). Each
pattern then costs a colormap lookup of the pixels shown, a gather into a copy of the
background, a rectangle of rows per cell (``raster_compose``), the value lines, notes and
suptitle composed from cached glyphs, and a one-byte-per-pixel PNG. A page that shows a colour picture (a
stored model input, ``Cell.rgb``) is composed the same way, then expanded to RGB through its
palette, the picture's own colours written into the pixels that show it, and saved as an RGB
PNG; pages without one stay palette PNGs. Pages with a marked (problem) cell are left to
``PagePainter``.

The colormap is quantized to ``LEVELS`` entries (sampled at their centres); the static
page's anti-aliased greys share the remaining palette entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import palette as pal
from . import raster_probe as probe
from .cells import Cell, GridOptions
from .glyphs import GlyphCache, drawable, glyph_cache, stamp
from .grids import PagePainter, static_key
from .png import save_indexed_png, save_rgb_png
from .raster_compose import (
    BAD,
    LEVELS,
    CellMap,
    PageLayout,
    cell_map,
    fill_levels,
    static_palette,
    with_pictures,
)
from .suptitle import Suptitle

__all__ = ["BAD", "LEVELS", "RasterPainter", "painter", "supports"]

MAX_LAYOUT_BYTES = 256 << 20  # static layouts kept per painter (a 3x3 mosaic page: ~4 MB)


def supports(cells: Sequence[Cell | None]) -> bool:
    """Whether the raster path can draw these cells: every cell a 2-D image (labels allowed)
    or an RGB picture, no side longer than the probe colours can encode, value lines and
    notes in printable ASCII."""
    return all(
        c is None
        or (
            c.problem is None
            and c.shape is not None
            and (len(c.shape) == 2 or c.rgb)
            and max(c.shape[:2]) <= pal.MAX_PROBE
            and (c.caption is None or drawable(c.caption))
            and (c.note is None or drawable(c.note))
        )
        for c in cells
    )


class RasterPainter:
    """Draws grid pages of image cells as palette PNGs (see the module docstring)."""

    def __init__(self, opts: GridOptions) -> None:
        import matplotlib
        from matplotlib.font_manager import FontProperties

        from . import decor

        self.opts = opts
        self.mpl = PagePainter(opts)
        cmap = matplotlib.colormaps.get_cmap(opts.cmap)
        self.lut = cmap((np.arange(LEVELS) + 0.5) / LEVELS, bytes=True)[:, :3]
        self.suptitle = Suptitle(self.mpl.fig, opts.dpi)
        self.captions: GlyphCache = glyph_cache(FontProperties(size=decor.VALUE_POINTS), opts.dpi)
        self.notes: GlyphCache = glyph_cache(FontProperties(size=decor.TITLE_POINTS), opts.dpi)
        self._layouts: dict[tuple, PageLayout] = {}

    def close(self) -> None:
        self.mpl.fig.clear()
        self._layouts.clear()

    def draw(self, cells: Sequence[Cell | None], path: Path, suptitle: str | None = None) -> None:
        padded = [cells[i] if i < len(cells) else None for i in range(len(self.mpl.axes))]
        lay = self._layout(padded)
        page = lay.index.copy()
        flat = page.reshape(-1)
        pictures: list[tuple[Cell, CellMap]] = []
        for cell, where in zip(padded, lay.cells, strict=True):
            if cell is None or where is None:
                continue
            if cell.note is not None:
                flat[where.pos] = BAD
            elif where.rgb:
                pictures.append((cell, where))  # written once the page is RGB
            else:
                fill_levels(page, where, cell)
            for text, anchor, cache in (
                (cell.caption, where.caption, self.captions),
                (cell.note, where.note, self.notes),
            ):
                if text is not None and anchor is not None:
                    line = cache.line(text)
                    stamp(page, line, anchor.place(line), lay.greys)
        if suptitle:
            self.suptitle.draw(page, suptitle, lay.greys, lay.strip_bg, lay.strip)
        path.parent.mkdir(parents=True, exist_ok=True)
        if lay.rgb:
            save_rgb_png(path, with_pictures(page, lay.palette, pictures), self.opts.dpi)
        else:
            save_indexed_png(path, page, lay.palette, self.opts.dpi)

    def _layout(self, padded: list[Cell | None]) -> PageLayout:
        """The layout of these cells' static page: kept, least recently used dropped first
        beyond ``MAX_LAYOUT_BYTES``."""
        key = static_key(padded)
        lay = self._layouts.pop(key, None)  # re-inserted: the dict's order is least recent first
        if lay is None:
            lay = self._build(padded)
            kept = sum(v.nbytes for v in self._layouts.values())
            while self._layouts and kept + lay.nbytes > MAX_LAYOUT_BYTES:
                kept -= self._layouts.pop(next(iter(self._layouts))).nbytes
        self._layouts[key] = lay
        return lay

    def _build(self, padded: list[Cell | None]) -> PageLayout:
        """Draw the static page (placeholder images, no suptitle, value lines or notes), the
        probe pages and the reference texts alone."""
        mpl = self.mpl
        shown = probe.placeholders(padded)
        mpl.arrange(shown, None)  # the value line and note artists, with reference texts
        self.suptitle.hide()
        plain = [None if c is None else replace(c, note=None) for c in shown]
        mpl.arrange(plain, None)
        for text in mpl.captions + mpl.notes:
            if text is not None:
                text.set_visible(False)
        canvas = mpl.fig.canvas
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        height, width = rgb.shape[:2]
        boxes = probe.axes_boxes(mpl, plain, height, width)
        strip, strip_bg = probe.suptitle_strip(mpl, rgb, boxes)
        shots = probe.probe_shots(mpl, plain, boxes)
        anchors = probe.text_anchors(mpl, shown, self.captions, self.notes)
        cells: list[CellMap | None] = [
            None
            if cell is None or real is None or box is None or shot is None or cell.shape is None
            else cell_map(shot, box, width, cell.shape, real, found)
            for cell, real, box, shot, found in zip(
                plain, padded, boxes, shots, anchors, strict=True
            )
        ]
        index, palette, greys = static_palette(rgb, cells, self.lut)
        return PageLayout(
            index=index,
            palette=palette,
            cells=cells,
            strip=strip,
            strip_bg=strip_bg,
            greys=greys,
            rgb=any(c is not None and c.rgb for c in cells),
        )


_PAINTERS: dict[str, RasterPainter] = {}
MAX_PAINTERS = 4


def painter(opts: GridOptions) -> RasterPainter:
    """The process's raster painter for ``opts``: kept between calls (with the layouts of
    every page it drew), so a pool worker drawing many pieces of patterns builds each page
    layout once."""
    key = repr(opts)
    found = _PAINTERS.get(key)
    if found is None:
        if len(_PAINTERS) >= MAX_PAINTERS:
            for old in _PAINTERS.values():
                old.close()
            _PAINTERS.clear()
        found = _PAINTERS[key] = RasterPainter(opts)
    return found
