"""Where everything goes on a features picture, in pixels, and what its texts say (pure).

A picture is a grid of cells, each a title (one or two short lines) above a drawn array,
under a head holding the picture's title (and, for the "input" space, a colour bar). Pictures
are placed at whole pixels so that a drawn cell can be read back from the PNG.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

DPI = 100.0
TITLE_POINTS = 7.5  # a cell's title
HEAD_POINTS = 10.0  # the picture's title
MARGIN = 14  # pixels around everything
GAP = 10  # pixels between cells
SPLIT = 18  # extra pixels between the visualization column and the top patterns
MIN_CELL_W = 84  # wide enough for 'c255  -1.23e-05'
MIN_WIDTH = 600  # a picture is never narrower (its title must fit)
COLORBAR = 48  # pixels of the head given to the colour bar ("input" space)
MAX_CELLS = 256  # most channels on one sheet
MAX_TOP = 16  # most channels (rows) on a top-patterns picture


def line_px(points: float) -> int:
    """Pixels from one text line's baseline to the next at ``points``."""
    return round(points * DPI / 72 * 1.3)


def char_px(points: float) -> float:
    """About the width of one character at ``points`` (DejaVu Sans digits and lowercase)."""
    return points * DPI / 72 * 0.56


def picture_box(n: int) -> int:
    """Pixels a cell's picture is fitted into on a sheet of ``n`` cells."""
    if n <= 16:
        return 160
    if n <= 64:
        return 112
    if n <= 144:
        return 84
    return 64


@dataclass(frozen=True)
class Grid:
    """A grid of ``rows`` x ``cols`` cells holding pictures of ``picture`` (h, w) pixels under
    ``title_lines`` lines of title, below a head of ``head`` pixels; ``split`` extra pixels
    after the first column."""

    rows: int
    cols: int
    picture: tuple[int, int]
    title_lines: int
    head: int
    split: int = 0

    @property
    def cell_w(self) -> int:
        return max(self.picture[1], MIN_CELL_W)

    @property
    def title_h(self) -> int:
        return self.title_lines * line_px(TITLE_POINTS) + 3

    @property
    def row_h(self) -> int:
        return self.title_h + self.picture[0] + GAP

    @property
    def grid_w(self) -> int:
        return (
            self.cols * self.cell_w + (self.cols - 1) * GAP + (self.split if self.cols > 1 else 0)
        )

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole picture."""
        width = max(MIN_WIDTH, self.grid_w + 2 * MARGIN)
        return (self.head + self.rows * self.row_h - GAP + MARGIN, width)

    def cell_x(self, col: int) -> int:
        """Left edge of column ``col``'s cell."""
        left = (self.size[1] - self.grid_w) // 2
        return left + col * (self.cell_w + GAP) + (self.split if col > 0 else 0)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of the picture in cell (row, col)."""
        y = self.head + row * self.row_h + self.title_h
        x = self.cell_x(col) + (self.cell_w - self.picture[1]) // 2
        return (y, x)

    def title_at(self, row: int, col: int) -> tuple[float, float]:
        """(y, x) in pixels of the bottom centre of cell (row, col)'s title."""
        y, _ = self.origin(row, col)
        return (y - 2.0, self.cell_x(col) + self.cell_w / 2)


def head_height(lines: int, colorbar: bool = False, extra_lines: int = 0) -> int:
    """Pixels above the grid: ``lines`` of title (+ a colour bar, + ``extra_lines`` of column
    headers in cell-title size)."""
    return (
        MARGIN
        + lines * line_px(HEAD_POINTS)
        + 8
        + (COLORBAR if colorbar else 0)
        + extra_lines * line_px(TITLE_POINTS)
    )


def wrap(text: str, width_px: int, points: float = HEAD_POINTS) -> str:
    """``text`` with each line broken at spaces (or inside a long word) to fit ``width_px``."""
    chars = max(20, int(width_px / char_px(points)))
    return "\n".join(
        "\n".join(textwrap.wrap(line, chars, break_long_words=True)) or line
        for line in text.split("\n")
    )


def number(value: float) -> str:
    """A value in a title: 3 significant digits, 'n/a' when not finite."""
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


def cell_title(channel: int, activation: float, dataset: float = math.nan) -> str:
    """A sheet cell's title: its channel and the activation its image reached, then the best
    activation over the run's patterns when known."""
    first = f"c{channel}  {number(activation)}"
    return f"{first}\ndata {number(dataset)}" if math.isfinite(dataset) else first


def pattern_title(index: int, value: float) -> str:
    """A top pattern's title: its pattern index and the unit's activation on it."""
    return "none" if index < 0 else f"#{index}\n{number(value)}"


def when(epoch: int | None) -> str:
    return "" if epoch is None else f", epoch {epoch}"


def range_text(space: str, low: float, high: float, preprocess: str | None) -> str:
    """What the stored images are: their space and range (and the preprocessing they pass)."""
    text = f"space {space} [{number(low)}, {number(high)}]"
    if preprocess:
        text += f", fed through preprocess {preprocess}"
    return text


def sheet_title(
    layer: str,
    epoch: int | None,
    total: int,
    shown: int,
    settings: dict,
    dataset_known: bool,
    scale: tuple[float, float] | None = None,
) -> str:
    """The sheet's title lines: what it shows, how the images were made, how to read it."""
    count = (
        f"the first {shown} of {total} visualized channels (at most {MAX_CELLS} per sheet)"
        if shown < total
        else f"{total} channel{'s' if total != 1 else ''}"
    )
    steps = settings.get("steps", "?")
    seed = settings.get("seed", "?")
    made = f"{steps} steps, seed {seed}, " + range_text(
        str(settings.get("space", "?")),
        float(settings.get("low", math.nan)),
        float(settings.get("high", math.nan)),
        settings.get("preprocess"),
    )
    read = "cell title: channel, activation its image reached"
    if dataset_known:
        read += "; data: best activation over the run's patterns"
    lines = [f"{layer}{when(epoch)}: feature visualizations of {count}", made, read]
    if scale is not None:
        lines.append(
            f"colour: viridis, one scale for the whole sheet from {number(scale[0])} to "
            f"{number(scale[1])}"
        )
    return "\n".join(lines)


def top_title(
    layer: str,
    epoch: int | None,
    channels: Sequence[int],
    total: int,
    k: int,
    settings: dict,
    colours: str = "grey",
) -> str:
    """The top-patterns picture's title lines: what the rows are, how the pictures and the
    overlay are drawn (``colours``: "grey" or "RGB")."""
    shown = len(channels)
    rows = (
        f"the first {shown} of {total} channels (at most {MAX_TOP})"
        if shown < total
        else f"{shown} channel{'s' if shown != 1 else ''}"
    )
    low = number(float(settings.get("low", math.nan)))
    high = number(float(settings.get("high", math.nan)))
    samples = settings.get("samples", "?")
    return "\n".join(
        [
            f"{layer}{when(epoch)}: {rows}, each with its top {k} patterns",
            f"{colours} from {low} to {high}; titles: #pattern and activation",
            f"hot overlay: |SmoothGrad| ({samples} samples) / its 99th percentile",
        ]
    )
