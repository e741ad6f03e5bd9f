"""One line of text from matplotlib's own font without drawing a figure, for the parts of a
raster page that change with every pattern (the page title, each cell's value range, a
constant cell's note).

Each character is rendered once by FreeType (matplotlib's font object, public API) and kept;
a line is composed at matplotlib's pen positions (the sum of the hinted advances). Laying out
a whole string through FreeType costs about 2 ms in matplotlib 3.11 (every glyph is loaded
again); composing cached glyphs costs a few microseconds a character. matplotlib itself
places glyphs at the text anchor's sub-pixel phase, so a composed line may differ from its
drawing by a pixel's anti-aliasing; where it is placed is calibrated against one matplotlib
drawing of a reference (``Anchor.calibrate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Line:
    """A composed line: ``coverage`` (rows, cols) uint8, its baseline row, the pen origin's
    column in it and its pen advance (what matplotlib's text layout centres: the pen starts
    half of it left of the centre)."""

    coverage: np.ndarray
    baseline: int
    origin: int
    width: int


def drawable(text: str) -> bool:
    """Whether ``text`` can be composed here: printable ASCII (no font fallback needed)."""
    return text.isascii() and text.isprintable()


class GlyphCache:
    """Glyphs of one font at one size and resolution (see the module docstring).

    Each printable ASCII character is rendered on first use into a block as tall as the font
    (its bounding box) and as wide as its advance, so a line is one concatenation of blocks;
    the few pixels of a glyph beyond its advance (an 'f' leaning right) are added afterwards."""

    def __init__(self, prop: Any, dpi: float) -> None:
        from matplotlib.backends.backend_agg import get_hinting_flag
        from matplotlib.font_manager import findfont, get_font

        self.font = get_font(findfont(prop))
        self.points, self.dpi, self.flags = (
            float(prop.get_size_in_points()),
            dpi,
            get_hinting_flag(),
        )
        scale = self.points * dpi / 72 / self.font.units_per_EM
        _, y_min, _, y_max = self.font.bbox
        self.ascent = int(np.ceil(y_max * scale)) + 1
        self.height = self.ascent + int(np.ceil(-y_min * scale)) + 1
        self.advance: dict[str, int] = {}
        self._blocks: dict[str, np.ndarray] = {}
        self._spill: dict[str, list[tuple[int, np.ndarray]]] = {}  # column offset, coverage

    def _render(self, char: str) -> None:
        font = self.font
        font.clear()
        font.set_size(self.points, self.dpi)
        font.set_text(char, 0.0, flags=self.flags)
        font.draw_glyphs_to_bitmap(antialiased=True)
        bitmap = np.asarray(font.get_image())
        top = bitmap.shape[0] - round(font.get_descent() / 64)  # rows above the baseline
        left = int(np.floor(font.get_bitmap_offset()[0] / 64))
        advance = round(font.load_char(ord(char), flags=self.flags).horiAdvance / 64)
        shift = -min(left, 0)
        full = np.zeros((self.height, max(advance, left + bitmap.shape[1], 1) + shift), np.uint8)
        r = self.ascent - top
        rows = slice(max(r, 0), min(r + bitmap.shape[0], self.height))
        full[rows, shift + left : shift + left + bitmap.shape[1]] = bitmap[
            rows.start - r : rows.stop - r
        ]
        self.advance[char] = advance
        self._blocks[char] = full[:, shift : shift + advance]
        spill = [(-shift, full[:, :shift])] if shift else []
        if full.shape[1] > shift + advance:
            spill.append((advance, full[:, shift + advance :]))
        self._spill[char] = [(at, part) for at, part in spill if part.any()]

    def width(self, text: str) -> int:
        """Pen advance of ``text`` in pixels (how wide matplotlib lays it out)."""
        for c in set(text) - self.advance.keys():
            self._render(c)
        advance = self.advance
        return sum(advance[c] for c in text)

    def line(self, text: str) -> Line:
        """``text`` (printable ASCII) composed; pixels spilling left of the first glyph or
        right of the last are dropped."""
        if not text:
            return Line(np.zeros((self.height, 1), np.uint8), self.ascent, 0, 0)
        blocks = self._blocks
        for c in set(text) - blocks.keys():
            self._render(c)
        out = np.concatenate([blocks[c] for c in text], axis=1)
        pen = 0
        advance, spills = self.advance, self._spill
        for c in text:
            for at, part in spills[c]:
                c0, c1 = max(pen + at, 0), min(pen + at + part.shape[1], out.shape[1])
                if c1 > c0:
                    view = out[:, c0:c1]
                    np.maximum(view, part[:, c0 - pen - at : c1 - pen - at], out=view)
            pen += advance[c]
        return Line(out, self.ascent, 0, out.shape[1])


_CACHES: dict[tuple[str, float, float], GlyphCache] = {}


def glyph_cache(prop: Any, dpi: float) -> GlyphCache:
    """The process's cache for a font (by its file), size and resolution."""
    from matplotlib.font_manager import findfont

    key = (str(findfont(prop)), float(prop.get_size_in_points()), float(dpi))
    found = _CACHES.get(key)
    if found is None:
        found = _CACHES[key] = GlyphCache(prop, dpi)
    return found


@dataclass(frozen=True)
class Anchor:
    """Where a horizontally centred line goes on a page: its baseline row and the column its
    pen advance is centred on."""

    baseline: float
    center: float

    @classmethod
    def calibrate(
        cls, ink: np.ndarray, offset: tuple[int, int], cache: GlyphCache, reference: str
    ) -> Anchor | None:
        """From ``ink`` (a boolean region of the page, top-left at page ``offset``, that is
        True where matplotlib drew ``reference`` and nothing else), the anchor that puts the
        composed reference on the same pixels; None when nothing was drawn."""
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        line = cache.line(reference)
        own_rows = np.flatnonzero(line.coverage.any(axis=1))
        own_cols = np.flatnonzero(line.coverage.any(axis=0))
        if rows.size == 0 or own_rows.size == 0:
            return None
        top = offset[0] + rows[0] - own_rows[0]  # the composed bitmap's top row on the page
        left = offset[1] + cols[0] - own_cols[0]
        return cls(top + line.baseline, left + line.origin + line.width / 2)

    def place(self, line: Line) -> tuple[int, int]:
        """(row, column) of the top-left corner of ``line``'s coverage on the page."""
        return (
            round(self.baseline - line.baseline),
            round(self.center - line.width / 2) - line.origin,
        )


def stamp(page: np.ndarray, line: Line, at: tuple[int, int], greys: np.ndarray) -> None:
    """Draw ``line`` black on white into the palette page ``page`` (uint8 indices) at ``at``:
    each covered pixel gets the palette entry of its grey level (``greys``: grey -> entry).
    Meant for white areas of the page (the title strip, a cell's value line)."""
    top, left = at
    h, w = line.coverage.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, page.shape[0]), min(left + w, page.shape[1])
    if r1 <= r0 or c1 <= c0:
        return
    cov = line.coverage[r0 - top : r1 - top, c0 - left : c1 - left]
    np.copyto(page[r0:r1, c0:c1], greys[255 - cov], where=cov > 0)
