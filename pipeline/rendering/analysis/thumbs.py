"""The "top patterns" sheet composed with numpy (pure, no matplotlib): where each thumbnail
goes, how big it is drawn, what it shows and its colours.

Rows are channels, each holding the K patterns that drive the channel hardest, left to right;
many channels are split into side-by-side groups of rows so the sheet stays near a page's
shape. The whole sheet is one RGB array: one ``imshow`` instead of one Axes per thumbnail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import layout
from ..input_cells import rgb_scale

CAPTION_POINTS = 7.0  # pattern index and value under each thumbnail
LABEL_POINTS = 8.0  # 'ch 12' left of each row
TITLE_POINTS = 10.0  # the sheet's two title lines
DPI = 100.0
SMALL = 48  # thumbnails smaller than this are enlarged by a whole factor
LARGE = 128  # larger ones are shown every n-th pixel


def line_px(points: float, dpi: float = DPI) -> int:
    """Pixels from one text line's baseline to the next at ``points``."""
    return round(points * dpi / 72 * 1.25)


CAPTION = 2 * line_px(CAPTION_POINTS) + 3  # under a thumbnail: pattern index and value
LABEL = 52  # pixels left of a row: its channel
GAP = 4  # pixels between thumbnails
GROUP_GAP = 24  # pixels between groups of rows
TITLE = 2 * line_px(TITLE_POINTS) + 18  # pixels above the sheet
ASPECT = 0.8  # width / height the grouping aims for
MAX_GROUPS = 4
MISSING = (235, 235, 235)  # no pattern (fewer than K) or no picture of it
BAD = (255, 255, 255)  # NaN in a picture, as render draws it


def fit_scale(h: int, w: int) -> tuple[int, int]:
    """(enlargement, step) drawing an h x w picture: small ones enlarged by a whole factor
    to about ``SMALL`` pixels, large ones sampled every ``step``-th pixel to at most
    ``LARGE``."""
    side = max(h, w, 1)
    up = math.ceil(SMALL / side) if side < SMALL else 1
    step = math.ceil(side / LARGE) if side > LARGE else 1
    return up, step


def shown_size(h: int, w: int) -> tuple[int, int]:
    """The drawn size of an h x w picture (``fit_scale``)."""
    up, step = fit_scale(h, w)
    return math.ceil(h / step) * up, math.ceil(w / step) * up


@dataclass(frozen=True)
class TopLayout:
    """Pixel geometry of a sheet of ``channels`` rows of ``k`` thumbnails of ``cell`` pixels
    (h, w), in ``groups`` side-by-side groups of ``rows`` rows."""

    channels: int
    k: int
    cell: tuple[int, int]
    groups: int
    rows: int

    @property
    def row_height(self) -> int:
        return self.cell[0] + CAPTION + GAP

    @property
    def group_width(self) -> int:
        return LABEL + self.k * (self.cell[1] + GAP)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole sheet in pixels."""
        return (
            TITLE + self.rows * self.row_height + GAP,
            self.groups * self.group_width + (self.groups - 1) * GROUP_GAP + GAP,
        )

    def row_origin(self, row: int) -> tuple[int, int]:
        """Top-left pixel of sheet row ``row`` (channel order), label area included."""
        group, r = divmod(row, self.rows)
        return TITLE + r * self.row_height, group * (self.group_width + GROUP_GAP)

    def origin(self, row: int, j: int) -> tuple[int, int]:
        """Top-left pixel of the ``j``-th thumbnail of sheet row ``row``."""
        y, x = self.row_origin(row)
        return y, x + LABEL + j * (self.cell[1] + GAP)


def groups_for(channels: int, k: int, cell: tuple[int, int], most: int = MAX_GROUPS) -> int:
    """How many side-by-side groups of rows bring the sheet closest to ``ASPECT``."""

    def misfit(g: int) -> float:
        h, w = TopLayout(channels, k, cell, g, math.ceil(channels / g)).size
        return abs(math.log(w / h / ASPECT))

    return min(range(1, max(1, min(most, channels)) + 1), key=misfit)


def top_layout(channels: int, k: int, cell: tuple[int, int]) -> TopLayout:
    groups = groups_for(channels, k, cell)
    return TopLayout(channels, k, cell, groups, math.ceil(channels / groups))


# -- what one thumbnail shows -------------------------------------------------------------------
def picture(
    arr: np.ndarray, channel: int, kind: str, rgb: float | None, max_channels: int = 64
) -> np.ndarray:
    """A pattern's picture for a row of ``channel``: (H, W, 3) in [0, 1] when ``rgb`` (its
    divisor) is given; else 2-D. A layer output of rank 3 or 4 shows the row's channel map (a
    volume's mean over depth); anything else follows render's ``to_image``."""
    a = np.asarray(arr)
    if rgb is not None:
        return np.clip(a.astype(np.float32) / np.float32(rgb), 0.0, 1.0)
    if kind == "layer output" and a.ndim in (3, 4):
        return np.asarray(layout.shown_values(a, a.shape[-1])[..., channel], np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        return a[..., 0].astype(np.float32)
    return np.asarray(layout.to_image(a, "square", max_channels), np.float32)


def sheet_rgb_scale(arrays: Sequence[np.ndarray]) -> float | None:
    """Render's rule for input pictures over all of a sheet's patterns: RGB divisor or None."""
    if not arrays:
        return None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        return None
    finite = (a[np.isfinite(a)] if a.dtype.kind == "f" else a.ravel() for a in arrays)
    values = [v for v in finite if v.size]
    lo = min(float(v.min()) for v in values) if values else None
    hi = max(float(v.max()) for v in values) if values else None
    return rgb_scale(arrays[0].shape, str(arrays[0].dtype), lo, hi)


def colorize(image: np.ndarray, lo: float, hi: float, lut: np.ndarray) -> np.ndarray:
    """A 2-D image through a (256, 3) uint8 colour table over ``lo``..``hi``; NaN/inf drawn
    ``BAD``. An (H, W, 3) picture in [0, 1] becomes uint8 as it is."""
    if image.ndim == 3:
        return np.round(image * 255).astype(np.uint8)
    finite = np.isfinite(image)
    span = hi - lo if hi > lo else 1.0
    level = np.clip((np.where(finite, image, lo) - lo) / span * 255, 0, 255).astype(np.uint8)
    out = lut[level]
    out[~finite] = BAD
    return out


def enlarge(rgb: np.ndarray) -> np.ndarray:
    """A (H, W, 3) thumbnail at its drawn size (``fit_scale``)."""
    up, step = fit_scale(rgb.shape[0], rgb.shape[1])
    small = rgb[::step, ::step]
    return small.repeat(up, axis=0).repeat(up, axis=1) if up > 1 else small


def caption(index: int, value: float, width: int, char_px: float) -> str:
    """'#123 0.5' on one line when it fits ``width`` pixels, else on two."""
    one = f"#{index} {layout.number(value)}"
    if len(one) * char_px <= width:
        return one
    return f"#{index}\n{layout.number(value)}"


def blank_sheet(lay: TopLayout) -> np.ndarray:
    return np.full((*lay.size, 3), 255, np.uint8)


def paste(sheet: np.ndarray, lay: TopLayout, row: int, j: int, rgb: np.ndarray | None) -> None:
    """Put a thumbnail (or, for None, the ``MISSING`` ground) in its place, centred."""
    y, x = lay.origin(row, j)
    ch, cw = lay.cell
    if rgb is None:
        sheet[y : y + ch, x : x + cw] = MISSING
        return
    h, w = min(rgb.shape[0], ch), min(rgb.shape[1], cw)
    dy, dx = (ch - h) // 2, (cw - w) // 2
    sheet[y + dy : y + dy + h, x + dx : x + dx + w] = rgb[:h, :w]
