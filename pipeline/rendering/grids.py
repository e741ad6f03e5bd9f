"""Per-pattern grid pages: one cell per layer, ``imshow`` titled with layer name and shape.

A ``PagePainter`` builds its figure once and, for every later pattern, only swaps image data,
color limits and titles before saving; that is what makes thousands of pages affordable.
Uses matplotlib's object API (Figure + Agg canvas), never pyplot's global state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import DamagedDataError, PassageError, RenderError
from ..store import Run
from ..store.stats import array_stats
from . import decor, layout
from .png import save_png

log = logging.getLogger(__name__)

PNG_OPTIONS = {"compress_level": 1}
# A cell whose data is missing or damaged: red frame and text on a pale red ground.
MARK_COLOR = "#c00000"
MARK_FACE = "#ffe0e0"


@dataclass
class Cell:
    """What one grid cell shows: an image with its color limits, or a problem."""

    title: str
    image: np.ndarray | None = None
    vmin: float | None = None
    vmax: float | None = None
    problem: str | None = None
    labels: tuple[tuple[int, int, str], ...] = ()  # (row, col, text) in image pixels
    caption: str | None = None  # the value line under the title ('min 0, max 2.5')
    note: str | None = (
        None  # said in place of the image ('constant 0.25'); image kept for its shape
    )
    # A mosaic given by its channel maps: a C-contiguous (H, W, C) array whose first
    # ``max_tiles`` channels are the tiles. ``image`` is then built on first use (``picture``);
    # the raster painter reads the maps directly.
    tiles: np.ndarray | None = None
    max_tiles: int = 64

    @cached_property
    def shape(self) -> tuple[int, ...] | None:
        """The shape of the image the cell shows (None: no image)."""
        if self.image is not None:
            return self.image.shape
        if self.tiles is not None:
            return layout.mosaic_shape(self.tiles.shape, self.max_tiles)
        return None

    def picture(self) -> np.ndarray | None:
        """The image the cell shows (a mosaic of ``tiles`` is built here, once)."""
        if self.image is None and self.tiles is not None:
            self.image = layout.channel_mosaic(self.tiles, self.max_tiles)
        return self.image


@dataclass
class GridOptions:
    rows: int = 3
    cols: int = 3
    cmap: str = "viridis"
    figsize: tuple[float, float] = (10.0, 10.0)
    dpi: int = 100
    vector: str = "square"
    max_channels: int = 64
    strict: bool = False
    ticks: bool = True  # pixel-index ticks on each cell (off on dense evolution sheets)
    scale: str = "layer"  # color scale of a mosaic: one per "layer" or one per "channel"
    raster: bool = True  # draw pages with the raster painter where it can (else matplotlib)


@dataclass
class DrawReport:
    pages: int = 0
    problems: list[str] = field(default_factory=list)  # one line per marked cell
    damaged: dict[str, str] = field(default_factory=dict)  # data file -> what is wrong

    def merge(self, other: DrawReport) -> None:
        self.pages += other.pages
        self.problems.extend(other.problems)
        self.damaged.update(other.damaged)


def auto_limits(image: np.ndarray) -> tuple[float, float]:
    """Color limits of one image over its finite values (imshow's own autoscale, NaN-safe)."""
    lo, hi, _ = array_stats(image)
    return layout.color_limits(lo, hi)


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


class ChunkCache:
    """Holds the one most recently opened data file per layer (bounded memory).

    Each file's size and checksum are checked when it is opened, so a damaged file is marked
    instead of drawn with wrong values.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._open: dict[tuple[str, int | None], tuple[int, int, np.ndarray]] = {}

    def get(self, layer: str, pattern: int, epoch: int | None) -> np.ndarray:
        hit = self._open.get((layer, epoch))
        if hit is not None and hit[0] <= pattern < hit[1]:
            return hit[2][pattern - hit[0]]
        entry = self.run.entry_for(layer, pattern, epoch)
        arr = self.run.load(entry, check=True)  # checked once per file by the Run
        self._open[(layer, epoch)] = (entry.first, entry.first + entry.count, arr)
        return arr[pattern - entry.first]


def layer_cell(
    cache: ChunkCache,
    layer: str,
    pattern: int,
    epoch: int | None,
    opts: GridOptions,
    report: DrawReport | None = None,
) -> Cell:
    """The cell of one layer for one pattern; a damaged file becomes a marked cell (recorded in
    ``report``), or, with ``opts.strict``, a RenderError."""
    rec = cache.run.layer(layer)
    try:
        data = cache.get(layer, pattern, epoch)
    except PassageError as exc:
        if opts.strict:
            raise RenderError(
                f"pattern {pattern}, layer {layer!r}: {exc} (--strict stops at the first problem)"
            ) from exc
        reason = exc.reason if isinstance(exc, DamagedDataError) else "not captured"
        if report is not None:
            where = f" ({exc.path})" if isinstance(exc, DamagedDataError) else ""
            report.problems.append(f"pattern {pattern}, layer {layer!r}: {reason}{where}")
            if isinstance(exc, DamagedDataError):
                report.damaged.setdefault(exc.path, str(exc))
        return Cell(layout.cell_title(layer, rec.shape), problem=reason)
    # titled with the stored shape: run.json may hold None for free-size models
    return data_cell(layer, np.asarray(data, np.float32), opts)


def data_cell(name: str, data: np.ndarray, opts: GridOptions) -> Cell:
    """The cell of one pattern's output ``data``: its image at the layer's color scale (or, with
    ``opts.scale == "channel"``, each mosaic tile at its own), titled with name and shape, its
    value range in the value line, a note when it is constant."""
    values = layout.shown_values(data, opts.max_channels)
    lo, hi, nonfinite = array_stats(values)
    per_channel = opts.scale == "channel" and values.ndim == 3
    image = tiles = None
    vmin, vmax = layout.color_limits(lo, hi)
    if values.ndim == 3:  # a mosaic, drawn from its channel maps
        if per_channel:
            tiles, vmin, vmax = layout.scale_channels(values), 0.0, 1.0
        else:  # the whole array when it is contiguous: its first channels are the tiles
            whole = data if data.ndim == 3 else values
            tiles = whole if whole.flags.c_contiguous else np.ascontiguousarray(values)
    else:
        image = layout.to_image(values, opts.vector, opts.max_channels)
    return Cell(
        layout.cell_title(name, data.shape, opts.max_channels, per_channel),
        image=image,
        vmin=vmin,
        vmax=vmax,
        labels=tuple(layout.channel_labels(data.shape, opts.max_channels)),
        caption=layout.value_caption(lo, hi, nonfinite),
        note=layout.constant_note(lo, hi),
        tiles=tiles,
        max_tiles=opts.max_channels,
    )


def page_title(pattern: int, name: str | None, when: str | None, page: int, pages: int) -> str:
    """'pattern 3 (cat.png), epoch 5 (page 1/2)': the pattern, its file name when it has one,
    the record's moment in a training run, the page when there are several."""
    title = f"pattern {pattern}" + (f" ({name})" if name else "")
    title += f", {when}" if when else ""
    return title + (f" (page {page + 1}/{pages})" if pages > 1 else "")
