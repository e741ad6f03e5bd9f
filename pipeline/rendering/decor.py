"""What a grid page puts around its images, planned once per page layout: each cell's title
fitted to the room it has (wrapped, else smaller), the space between rows that the titles,
value lines and tick labels need, and the size of each mosaic's channel labels.

The arithmetic is pure (``layout``); this module measures text with the page's own font
(``glyphs``) and reads the figure's subplot parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import layout
from .glyphs import drawable, glyph_cache

TITLE_POINTS = 10.0  # a cell title's largest size ('medium')
VALUE_POINTS = 8.0  # the value line under a title
VALUE_PAD = 2.0  # points between the value line and the image
TITLE_PAD = 6.0  # points between a title and what is under it (matplotlib's default)
LINE = 1.2  # matplotlib's line spacing
TICKS_BELOW = 21.0  # points under an axes with pixel ticks: tick, pad, tick labels
PAGE_TITLE = 18.0  # points of a one-line page title (12 pt), at 2 % from the top
TITLE_MARGIN = 8  # pixels kept free between neighbouring titles
NO_LABELS = "no channel labels: tiles too small"


@dataclass(frozen=True)
class Plan:
    """The decorations of one page layout."""

    titles: tuple[tuple[str, float], ...]  # per cell: title text (lines joined), points
    label_points: tuple[float | None, ...]  # per cell: channel label size, None: none
    title_pad: float  # points from the axes top to the title's bottom
    top: float  # subplots_adjust(top=..., hspace=...)
    hspace: float


def tile_side(cell: Any) -> int:
    """Image pixels of a mosaic tile's shorter side (from its labels' positions)."""
    rows = sorted({r for r, _, _ in cell.labels})
    cols = sorted({c for _, c, _ in cell.labels})
    h = rows[1] - rows[0] - 1 if len(rows) > 1 else cell.shape[0]
    w = cols[1] - cols[0] - 1 if len(cols) > 1 else cell.shape[1]
    return max(1, min(h, w))


def measurer(dpi: float, renderer: Callable[[], Any]) -> Callable[[float], layout.Measure]:
    """``measure_at(points)``: the pixel width of a line of text at that size, from the glyph
    cache for printable ASCII, else from matplotlib's renderer (font fallback)."""
    from matplotlib.font_manager import FontProperties

    def measure_at(points: float) -> layout.Measure:
        prop = FontProperties(size=points)
        cache = glyph_cache(prop, dpi)

        def measure(text: str) -> float:
            if drawable(text):
                return cache.width(text)
            return renderer().get_text_width_height_descent(text, prop, ismath=False)[0]

        return measure

    return measure_at


def plan(
    fig: Any,
    cells: Sequence[Any],
    rows: int,
    cols: int,
    ticks: bool,
    title_lines: int = 1,
) -> Plan:
    """The decorations of a page of ``cells`` (``cells.Cell``; None: an empty slot) on the
    figure ``fig``, with a page title of ``title_lines`` lines."""
    params = fig.subplotpars
    dpi = fig.dpi
    fig_w, fig_h = fig.get_figwidth() * dpi, fig.get_figheight() * dpi
    measure_at = measurer(dpi, fig.canvas.get_renderer)
    width = layout.title_width(fig_w, cols, params.left, params.right, params.wspace)
    width -= TITLE_MARGIN
    captions = any(c is not None and c.caption is not None for c in cells)
    title_pad = VALUE_PAD + VALUE_POINTS * LINE + 2.0 if captions else TITLE_PAD
    below = (
        TICKS_BELOW
        if ticks and any(c is not None and c.shape is not None and not c.labels for c in cells)
        else 6.0
    )
    page_title = PAGE_TITLE + 12.0 * LINE * (title_lines - 1) + 0.02 * fig_h * 72 / dpi

    def fitted(extra: Sequence[str]) -> tuple[list[tuple[str, float]], float, float]:
        titles = []
        for cell, more in zip(cells, extra, strict=True):
            if cell is None:
                titles.append(("", TITLE_POINTS))
                continue
            lines, size = layout.fit_title(cell.title + more, width, measure_at)
            titles.append(("\n".join(lines), size))
        header = (
            max((text.count("\n") + 1) * size * LINE for text, size in titles if text)
            if any(text for text, _ in titles)
            else 0.0
        )
        header += title_pad + 4.0
        top, hspace = layout.grid_spacing(
            fig_h * 72 / dpi, rows, header, below, page_title, bottom=params.bottom
        )
        return titles, top, hspace

    extra = [""] * len(cells)
    titles, top, hspace = fitted(extra)
    # the tiles' size on the page: the axes slots under this spacing
    avail_w = (params.right - params.left) * fig_w
    avail_h = (top - params.bottom) * fig_h
    slot_w = avail_w / (cols + (cols - 1) * params.wspace)
    slot_h = avail_h / (rows + (rows - 1) * hspace)
    points: list[float | None] = []
    for i, cell in enumerate(cells):
        if cell is None or not cell.labels or cell.shape is None:
            points.append(None)
            continue
        scale = layout.display_scale(slot_w, slot_h, cell.shape)
        size = layout.label_points(tile_side(cell) * scale, dpi, len(cell.labels[-1][2]))
        points.append(size)
        if size is None:
            extra[i] = "\n" + NO_LABELS
    if any(extra):
        titles, top, hspace = fitted(extra)
    return Plan(tuple(titles), tuple(points), title_pad, top, hspace)
