"""The page's suptitle for the raster painter: composed from matplotlib's own font
(``glyphs``) into the blank strip above the axes, at the place matplotlib puts it (measured
once on a reference title), so each page costs a few glyph blocks, not a figure draw. Titles
outside printable ASCII (font fallback) are drawn by matplotlib itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .glyphs import Anchor, drawable, glyph_cache, stamp

REFERENCE = "pattern 0"


class Suptitle:
    """Draws a figure's suptitle into the title strip of a palette page."""

    def __init__(self, fig: Any, dpi: float) -> None:
        self.fig = fig
        self.dpi = dpi
        self._title = fig.suptitle("")
        self._title.set_visible(False)
        self._cache = glyph_cache(self._title.get_fontproperties(), dpi)
        self._anchor: Anchor | None | bool = None  # False: no room measured for a title

    def hide(self) -> None:
        """Keep the title out of a full draw of the figure (the static page)."""
        self._title.set_visible(False)

    def draw(
        self, page: np.ndarray, text: str, greys: np.ndarray, background: object, height: int
    ) -> None:
        """Draw ``text`` into the first ``height`` rows of ``page`` (palette indices, white
        there in the static page; ``background`` their blank Agg region; ``greys`` maps grey
        levels to palette entries)."""
        if drawable(text):
            if self._anchor is None:
                self._anchor = self._calibrate(background, height) or False
            if self._anchor:
                line = self._cache.line(text)
                stamp(page[:height], line, self._anchor.place(line), greys)
                return
        page[:height] = greys[self._mpl_title(text, background, height)]

    def _calibrate(self, background: object, height: int) -> Anchor | None:
        """Where matplotlib draws a reference title; None when it does not show whole in the
        strip."""
        ink = self._mpl_title(REFERENCE, background, height) < 255
        rows = np.flatnonzero(ink.any(axis=1))
        if rows.size == 0 or rows[-1] >= height - 1:
            return None
        return Anchor.calibrate(ink, (0, 0), self._cache, REFERENCE)

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
