"""The page's suptitle for the raster painter: drawn straight from matplotlib's own font
(FreeType) into the blank strip above the axes, at the place matplotlib puts it (measured once
on a reference title), so each page costs a few glyphs, not a figure draw. Titles outside
printable ASCII (font fallback) are drawn by matplotlib itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Suptitle:
    """Draws a figure's suptitle text into a strip of grey levels."""

    def __init__(self, fig: Any, dpi: float) -> None:
        self.fig = fig
        self.dpi = dpi
        self._title = fig.suptitle("")
        self._title.set_visible(False)
        self._anchor: tuple[float, ...] | None = None  # the suptitle's baseline and centre

    def hide(self) -> None:
        """Keep the title out of a full draw of the figure (the static page)."""
        self._title.set_visible(False)

    def strip(self, text: str, background: object, height: int, columns: int) -> np.ndarray:
        """The suptitle in the blank strip above the axes (``height`` x ``columns`` pixels,
        ``background`` its blank Agg region), as grey levels (255 = white)."""
        if not (text.isascii() and text.isprintable()):
            return self._mpl_title(text, background, height)
        if self._anchor is None:
            self._anchor = self._calibrate(background, height)
        if not self._anchor:  # no room measured for a title: leave it to matplotlib
            return self._mpl_title(text, background, height)
        coverage, width, descent = self._glyphs(text)
        baseline, center = self._anchor
        top = round(baseline - (coverage.shape[0] - descent))
        left = round(center - width / 2)
        strip = np.full((height, columns), 255, np.uint8)
        h, w = coverage.shape
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + h, strip.shape[0]), min(left + w, strip.shape[1])
        if r1 > r0 and c1 > c0:
            strip[r0:r1, c0:c1] = 255 - coverage[r0 - top : r1 - top, c0 - left : c1 - left]
        return strip

    def _glyphs(self, text: str) -> tuple[np.ndarray, float, float]:
        """(coverage bitmap, advance width, descent) of ``text`` in the suptitle's font, in
        pixels, as matplotlib's Agg renderer lays it out."""
        from matplotlib.backends.backend_agg import get_hinting_flag
        from matplotlib.font_manager import findfont, get_font

        prop = self._title.get_fontproperties()
        font = get_font(findfont(prop))
        font.clear()
        font.set_size(prop.get_size_in_points(), self.dpi)
        font.set_text(text, 0.0, flags=get_hinting_flag())
        font.draw_glyphs_to_bitmap(antialiased=True)
        width = font.get_width_height()[0] / 64
        return np.asarray(font.get_image()).copy(), width, font.get_descent() / 64

    def _calibrate(self, background: object, height: int) -> tuple[float, ...]:
        """(baseline row, centre column) of the suptitle: where matplotlib draws a reference;
        () when it does not show whole in the strip."""
        reference = "pattern 0"
        drawn = 255 - self._mpl_title(reference, background, height).astype(np.int32)
        coverage, width, descent = self._glyphs(reference)
        rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
        own_rows = np.flatnonzero(coverage.any(axis=1))
        own_cols = np.flatnonzero(coverage.any(axis=0))
        if rows.size == 0 or own_rows.size == 0 or rows[-1] >= height - 1:
            return ()
        top = rows[0] - own_rows[0]
        left = cols[0] - own_cols[0]
        return top + coverage.shape[0] - descent, left + width / 2

    def _mpl_title(self, text: str, background: object, height: int) -> np.ndarray:
        """The suptitle drawn by matplotlib into the blank strip: its grey levels."""
        fig, canvas = self.fig, self.fig.canvas
        canvas.restore_region(background)
        self._title.set_text(text)
        self._title.set_visible(True)
        fig.draw_artist(self._title)
        self._title.set_visible(False)
        # black text anti-aliased on white: one grey per pixel (green weighs most)
        return np.asarray(canvas.buffer_rgba())[:height, :, 1].copy()
