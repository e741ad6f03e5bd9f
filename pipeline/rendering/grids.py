"""Per-pattern grid pages drawn with matplotlib: one ``cells.Cell`` per axes, ``imshow``
titled with layer name and shape, damaged cells marked.

A ``PagePainter`` builds its figure once and, for every later pattern, only swaps image data,
color limits and titles before saving; that is what makes thousands of pages affordable.
Uses matplotlib's object API (Figure + Agg canvas), never pyplot's global state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import decor, layout
from .cells import Cell, GridOptions, auto_limits
from .png import save_png

log = logging.getLogger(__name__)

PNG_OPTIONS = {"compress_level": 1}
# A cell whose data is missing or damaged: red frame and text on a pale red ground.
MARK_COLOR = "#c00000"
MARK_FACE = "#ffe0e0"


def static_key(cells: Sequence[Cell | None]) -> tuple[Any, ...]:
    """What the static part of a page depends on (titles, problems, image shapes, labels,
    whether there is a value line): while it stays the same from one pattern to the next,
    only the images, the value lines, the notes and the suptitle change."""
    return tuple(
        None
        if c is None
        else (
            c.title,
            c.problem,
            c.shape,
            None if c.tiles is None else c.tiles.shape,
            len(c.labels),
            c.caption is None,
        )
        for c in cells
    )


def place_image(
    ax: Any, im: Any, image: np.ndarray, cmap: Any, vmin: float, vmax: float
) -> tuple[Any, bool]:
    """Show ``image`` in ``ax``: update the existing artist ``im`` when the shape allows,
    else replace it. Returns (artist, whether a new one was created)."""
    if im is not None and im.get_array().shape == image.shape:
        im.set_data(image)
        im.set_clim(vmin, vmax)
        im.set_visible(True)
        return im, False
    if im is not None:
        im.remove()
    new = ax.imshow(
        image,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect=layout.aspect_for(image.shape),
    )
    return new, True


class PagePainter:
    """A reusable figure with rows x cols axes.

    The page is drawn in full once per static layout and kept as a background; every later
    pattern restores it and draws only what changes (images, the spines and channel labels
    over them, value lines, notes, the suptitle), in the order a full draw uses, so the
    pixels are the same as ``savefig``'s. Titles, spacing and label sizes follow
    ``decor.plan``, made once per layout.
    """

    def __init__(self, opts: GridOptions) -> None:
        import matplotlib

        self.opts = opts
        self.fig = Figure(figsize=opts.figsize, dpi=opts.dpi)
        FigureCanvasAgg(self.fig)
        self.axes = list(self.fig.subplots(opts.rows, opts.cols, squeeze=False).ravel())
        n = len(self.axes)
        self.images: list[Any] = [None] * n
        self.texts: list[Any] = [None] * n  # a marked cell's "NOT DRAWN" text
        self.captions: list[Any] = [None] * n  # value lines
        self.notes: list[Any] = [None] * n  # 'constant 0.25' in place of the image
        self.label_keys: list[tuple[Any, ...]] = [()] * n
        self.label_artists: list[list[Any]] = [[] for _ in self.axes]
        self.cmap = matplotlib.colormaps.get_cmap(opts.cmap).with_extremes(bad="white")
        self._suptitle = None
        self._key: tuple[Any, ...] | None = None
        self._background: Any = None
        self._plan_key: tuple[Any, ...] | None = None
        self.plan: decor.Plan | None = None

    def draw(self, cells: Sequence[Cell | None], path: Path, suptitle: str | None = None) -> None:
        padded = self.arrange(cells, suptitle)
        key = (static_key(padded), suptitle is None)
        canvas = self.fig.canvas
        moving = self._moving()
        if key != self._key or self._background is None:
            for artist in moving:
                artist.set_animated(True)  # left out of the background
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            self._key = key
        else:
            canvas.restore_region(self._background)
        for artist in moving:
            self.fig.draw_artist(artist)
            artist.set_animated(False)  # a later savefig of this figure draws everything
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, np.asarray(canvas.buffer_rgba()), self.opts.dpi)

    def arrange(
        self, cells: Sequence[Cell | None], suptitle: str | None = None
    ) -> list[Cell | None]:
        """Set the figure's artists to show ``cells`` (nothing drawn yet); the cells padded
        with None to one per axes."""
        padded = [cells[i] if i < len(cells) else None for i in range(len(self.axes))]
        lines = suptitle.count("\n") + 1 if suptitle else 1
        plan_key = (static_key(padded), lines)
        if plan_key != self._plan_key or self.plan is None:
            self.plan = decor.plan(
                self.fig, padded, self.opts.rows, self.opts.cols, self.opts.ticks, lines
            )
            self.fig.subplots_adjust(top=self.plan.top, hspace=self.plan.hspace)
            self._plan_key = plan_key
        for i, (ax, cell) in enumerate(zip(self.axes, padded, strict=True)):
            if cell is None:
                ax.set_visible(False)
                continue
            ax.set_visible(True)
            self._draw_cell(i, ax, cell)
        if suptitle is not None:
            if self._suptitle is None:
                self._suptitle = self.fig.suptitle(suptitle)
            else:
                self._suptitle.set_text(suptitle)
        return padded

    def _moving(self) -> list[Any]:
        """The artists that change between patterns, in a full draw's order."""
        moving: list[Any] = []
        for i, ax in enumerate(self.axes):
            im = self.images[i]
            if ax.get_visible() and im is not None and im.get_visible():
                moving.append(im)
                moving.extend(ax.spines.values())
                moving.extend(t for t in self.label_artists[i] if t.get_visible())
                for text in (self.captions[i], self.notes[i]):
                    if text is not None and text.get_visible():
                        moving.append(text)
        if self._suptitle is not None:
            moving.append(self._suptitle)
        return moving

    def _title(self, i: int, ax: Any, cell: Cell, color: str) -> None:
        assert self.plan is not None
        text, size = self.plan.titles[i]
        ax.set_title(text, color=color, fontsize=size, pad=self.plan.title_pad)

    def _draw_cell(self, i: int, ax: Any, cell: Cell) -> None:
        im = self.images[i]
        for text in (self.captions[i], self.notes[i]):
            if text is not None:
                text.set_visible(False)
        picture = cell.picture()
        if cell.problem is not None or picture is None:
            if im is not None:
                im.set_visible(False)
            if self.texts[i] is None:
                self.texts[i] = ax.text(
                    0.5,
                    0.5,
                    "",
                    ha="center",
                    va="center",
                    color=MARK_COLOR,
                    fontweight="bold",
                    transform=ax.transAxes,
                    wrap=True,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            for t in self.label_artists[i]:
                t.set_visible(False)
            self.texts[i].set_text(f"NOT DRAWN\n{cell.problem or 'no data'}")
            self.texts[i].set_visible(True)
            self._title(i, ax, cell, MARK_COLOR)
            ax.set_facecolor(MARK_FACE)
            for spine in ax.spines.values():
                spine.set_edgecolor(MARK_COLOR)
                spine.set_linewidth(3)
            return
        if self.texts[i] is not None:
            self.texts[i].set_visible(False)
            ax.set_facecolor("white")
            for spine in ax.spines.values():
                spine.set_edgecolor("black")
                spine.set_linewidth(0.8)
        shown = picture if cell.note is None else np.full(picture.shape, np.nan, np.float32)
        image = np.ma.masked_invalid(shown)
        vmin, vmax = (cell.vmin, cell.vmax) if cell.vmin is not None else auto_limits(picture)
        self.images[i], created = place_image(ax, im, image, self.cmap, vmin, vmax)
        if created:
            if self.opts.ticks:
                for axis in (ax.xaxis, ax.yaxis):  # pixel indices, never -0.5, 0.0, 0.5 ...
                    axis.set_major_locator(MaxNLocator(integer=True))
            else:
                ax.set_xticks([])
                ax.set_yticks([])
            self.label_keys[i] = ((-1, -1, ""),)  # a new image: draw its labels (and ticks) anew
        self._title(i, ax, cell, "black")
        self._draw_labels(i, ax, cell.labels)
        if cell.caption is not None:
            self.captions[i] = self._text(ax, self.captions[i], cell.caption, caption=True)
        if cell.note is not None:
            self.notes[i] = self._text(ax, self.notes[i], cell.note, caption=False)

    def _text(self, ax: Any, artist: Any, text: str, caption: bool) -> Any:
        """Show ``text`` as the cell's value line (over the image, centred) or note (in the
        middle of the image), creating its artist the first time."""
        if artist is None:
            if caption:
                from matplotlib.transforms import ScaledTranslation

                up = ScaledTranslation(0, decor.VALUE_PAD / 72, self.fig.dpi_scale_trans)
                artist = ax.text(
                    0.5,
                    1.0,
                    "",
                    transform=ax.transAxes + up,
                    ha="center",
                    va="bottom",
                    fontsize=decor.VALUE_POINTS,
                )
            else:
                artist = ax.text(
                    0.5,
                    0.5,
                    "",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=decor.TITLE_POINTS,
                )
        artist.set_text(text)
        artist.set_visible(True)
        return artist

    def _draw_labels(self, i: int, ax: Any, labels: tuple[tuple[int, int, str], ...]) -> None:
        """Channel index labels at each mosaic tile's top-left corner: white on a black box
        (legible on any colour), sized by the plan (kept while unchanged; none when the
        tiles are too small for them)."""
        assert self.plan is not None
        size = self.plan.label_points[i]
        key = (labels, size)
        if key == self.label_keys[i]:
            for t in self.label_artists[i]:
                t.set_visible(True)
            return
        for t in self.label_artists[i]:
            t.remove()
        box = {"boxstyle": "square,pad=0.12", "facecolor": "black", "edgecolor": "none"}
        if labels:  # mosaic pixel ticks mean nothing: tiles carry their channel index
            ax.set_xticks([])
            ax.set_yticks([])
        self.label_artists[i] = [
            ax.text(
                col - 0.5,
                row - 0.5,
                text,
                color="white",
                fontsize=size,
                ha="left",
                va="top",
                bbox=box,
                clip_on=True,
            )
            for row, col, text in (labels if size is not None else ())
        ]
        self.label_keys[i] = key


def page_title(pattern: int, name: str | None, when: str | None, page: int, pages: int) -> str:
    """'pattern 3 (cat.png), epoch 5 (page 1/2)': the pattern, its file name when it has one,
    the record's moment in a training run, the page when there are several."""
    title = f"pattern {pattern}" + (f" ({name})" if name else "")
    title += f", {when}" if when else ""
    return title + (f" (page {page + 1}/{pages})" if pages > 1 else "")
