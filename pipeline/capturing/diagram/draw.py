"""Draw a laid-out diagram (``layout.Diagram``) into PNG pages with matplotlib's
object API on an Agg canvas (no pyplot, no display): frames, then arrows, then boxes and their
text, one pixel per layout unit at ``DPI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MplPath

from .layout import Diagram
from .text import DPI, FONT, FONT_PT, LINE_H, PAD_X, PAD_Y

BOX_COLORS = {
    "input": "#d8f0d2",
    "conv": "#d6e6f7",
    "dense": "#e6dcf7",
    "pool": "#fbe3c8",
    "merge": "#f9d3cf",
    "norm": "#ececec",
    "activation": "#f6f6f6",
    "shape": "#fdf3c4",
    "other": "#ffffff",
}
FRAME_COLORS = ("#f3f6fb", "#e7eef8")  # alternate with depth
EDGE_COLOR = "#4d4d4d"
TEXT_COLOR = "#1a1a1a"
MAX_SIDE = 32000  # Agg refuses images of 2**16 pixels or more on a side


def _text(ax, x: float, y: float, line: str, **kw) -> None:  # type: ignore[no-untyped-def]
    ax.text(x, y, line, family=FONT, size=FONT_PT, va="top", ha="left", color=TEXT_COLOR, **kw)


def _draw(ax, diagram: Diagram, top: float, bottom: float) -> None:  # type: ignore[no-untyped-def]
    """Add the artists of what lies (partly) between ``top`` and ``bottom``: a page draws
    only its own part of a long diagram."""

    def seen(y0: float, y1: float) -> bool:
        return y1 >= top and y0 <= bottom

    for i, line in enumerate(diagram.header):
        if seen(PAD_Y + 8 + i * LINE_H, PAD_Y + 8 + (i + 1) * LINE_H):
            _text(
                ax, PAD_X + 8, PAD_Y + 8 + i * LINE_H, line, weight="bold" if i == 0 else "normal"
            )
    for frame in diagram.frames:
        if not seen(frame.y, frame.y + frame.h):
            continue
        ax.add_artist(
            FancyBboxPatch(
                (frame.x, frame.y), frame.w, frame.h,
                boxstyle="round,pad=0,rounding_size=6",
                facecolor=FRAME_COLORS[(frame.depth - 1) % len(FRAME_COLORS)],
                edgecolor="#7a8ca8", linewidth=1.0, linestyle="--", zorder=1,
            )
        )  # fmt: skip
        fill = FRAME_COLORS[(frame.depth - 1) % len(FRAME_COLORS)]
        for i, line in enumerate(frame.lines):  # above the arrows that enter the frame
            _text(
                ax, frame.x + PAD_X, frame.y + PAD_Y + i * LINE_H, line, style="italic",
                zorder=3.5, bbox={"facecolor": fill, "edgecolor": "none", "pad": 1.0},
            )  # fmt: skip
    for arrow in diagram.arrows:
        ys = [y for _, y in arrow.points]
        if not seen(min(ys), max(ys)):
            continue
        ax.add_artist(
            FancyArrowPatch(
                path=MplPath(arrow.points), arrowstyle="-|>", mutation_scale=11,
                color=EDGE_COLOR, linewidth=1.0, shrinkA=0, shrinkB=0, zorder=3,
            )
        )  # fmt: skip
    for box in diagram.boxes:
        if not seen(box.y, box.y + box.h):
            continue
        ax.add_artist(
            FancyBboxPatch(
                (box.x, box.y), box.w, box.h,
                boxstyle="round,pad=0,rounding_size=4",
                facecolor=BOX_COLORS.get(box.category, BOX_COLORS["other"]),
                edgecolor="#333333", linewidth=1.0, zorder=4,
            )
        )  # fmt: skip
        for i, line in enumerate(box.lines):
            weight = "bold" if i < box.bold else "normal"
            _text(ax, box.x + PAD_X, box.y + PAD_Y + i * LINE_H, line, weight=weight, zorder=5)


def draw_pages(
    diagram: Diagram, pages: Sequence[tuple[float, float]], paths: Sequence[Path]
) -> None:
    """Write each page ``(top, bottom)`` of ``diagram`` to its path (PNG at ``DPI``)."""
    if len(pages) != len(paths):
        raise ValueError(f"expected one path per page: {len(pages)} pages, {len(paths)} paths")
    if diagram.width > MAX_SIDE or any(b - t > MAX_SIDE for t, b in pages):
        raise ValueError(
            f"diagram of {diagram.width:.0f} px wide is too large to draw (at most {MAX_SIDE})"
        )
    for number, ((top, bottom), path) in enumerate(zip(pages, paths, strict=True), start=1):
        fig = Figure(figsize=(diagram.width / DPI, (bottom - top) / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        ax.set_xlim(0, diagram.width)
        ax.set_ylim(bottom, top)  # y downwards, as laid out
        _draw(ax, diagram, top, bottom)
        if len(pages) > 1:
            ax.text(
                diagram.width - PAD_X, bottom - PAD_Y, f"page {number} of {len(pages)}",
                family=FONT, size=FONT_PT, va="bottom", ha="right", color="#555555", zorder=6,
                bbox={"facecolor": "white", "edgecolor": "#999999", "pad": 2.0},
            )  # fmt: skip
        fig.savefig(path, dpi=DPI, format="png", facecolor="white")
