"""What a grid cell shows and how it is built from the store (no drawing here).

A ``Cell`` is one image with its color limits (or a channel mosaic given by its maps, or a
problem in place of the image), its title, value line, note and channel labels. ``layer_cell``
and ``data_cell`` make one from a layer's stored output for one pattern, read through a
``ChunkCache`` that keeps the most recently opened data file per layer; ``GridOptions`` are the
options of cells and of the pages they are drawn on, ``DrawReport`` what drawing them found.
The painters (``grids.PagePainter``, ``raster.RasterPainter``) draw cells into pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import DamagedDataError, PassageError, RenderError
from ..store import Run
from ..store.stats import array_stats
from . import layout


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

    @property
    def rgb(self) -> bool:
        """Whether the cell shows an (H, W, 3) colour picture as it is (no colormap): a stored
        model input drawn as a picture (``input_cells``)."""
        return self.image is not None and self.image.ndim == 3 and self.image.shape[2] == 3

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
        what = f"pattern {pattern}, layer {layer!r}"
        return problem_cell(exc, what, layout.cell_title(layer, rec.shape), opts, report)
    # titled with the stored shape: run.json may hold None for free-size models
    return data_cell(layer, np.asarray(data, np.float32), opts)


def problem_cell(
    exc: PassageError, what: str, title: str, opts: GridOptions, report: DrawReport | None
) -> Cell:
    """The marked cell of data that could not be read (``what``: "pattern 3, layer 'x'"),
    recorded in ``report``; with ``opts.strict``, a RenderError instead."""
    if opts.strict:
        raise RenderError(f"{what}: {exc} (--strict stops at the first problem)") from exc
    reason = exc.reason if isinstance(exc, DamagedDataError) else "not captured"
    if report is not None:
        where = f" ({exc.path})" if isinstance(exc, DamagedDataError) else ""
        report.problems.append(f"{what}: {reason}{where}")
        if isinstance(exc, DamagedDataError):
            report.damaged.setdefault(exc.path, str(exc))
    return Cell(title, problem=reason)


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
