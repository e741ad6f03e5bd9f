"""The sheet of a layer's feature visualizations: ``RUN/features/<layer dir>[.epoch-E].png``.

Every visualized channel's image in a grid (at most ``MAX_CELLS``, the first ones; the title
says when some are left out), each titled with its channel and the activation its image
reached (and the best over the run's patterns when an analysis exists), under a title naming
the layer, epoch, steps, seed and space. Image/pixels spaces are drawn as RGB (grey for one
channel) scaled from the space's [low, high]; the "input" space through viridis, on one
colour scale for the whole sheet drawn as a colour bar under the title.

The pixels are composed with numpy (``display``), each picture enlarged by a whole factor,
and placed on the figure unresampled (``figimage``); matplotlib adds the text and colour bar.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..analysis.canvas import new_figure, save_figure
from . import display as dp
from . import geometry as geo

log = logging.getLogger(__name__)

CMAP = "viridis"
FRAME = (190, 190, 190)  # the 1-pixel frame around each picture


def lut8(name: str, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """A matplotlib colormap (its part from ``lo`` to ``hi``) as 256 uint8 RGB entries."""
    lut = matplotlib.colormaps[name](np.linspace(lo, hi, 256))[:, :3]
    return np.rint(lut * 255.0).astype(np.uint8)


def blank(grid: geo.Grid) -> np.ndarray:
    """A white page of the grid's size."""
    return np.full((*grid.size, 3), 255, np.uint8)


def paste(page: np.ndarray, at: tuple[int, int], pixels: np.ndarray) -> None:
    """``pixels`` (h, w, 3) uint8 onto ``page`` with its top-left at ``at``, framed."""
    y, x = at
    h, w = pixels.shape[:2]
    page[max(y - 1, 0) : y + h + 1, max(x - 1, 0) : x + w + 1] = FRAME
    page[y : y + h, x : x + w] = pixels


def place_text(fig: Figure, at: tuple[float, float], text: str, **kwargs: Any) -> None:
    """``text`` on ``fig`` anchored at pixel (y from the top, x)."""
    height, width = fig.canvas.get_width_height()[::-1]
    fig.text(at[1] / width, 1.0 - at[0] / height, text, **kwargs)


def page_figure(grid: geo.Grid, page: np.ndarray) -> Figure:
    """A figure of exactly the page's pixels with the page drawn on it unresampled."""
    height, width = grid.size
    fig = new_figure((width + 0.25) / geo.DPI, (height + 0.25) / geo.DPI, dpi=geo.DPI)
    fig.figimage(page, 0, 0, origin="upper", resize=False, zorder=-1)
    return fig


def head_text(fig: Figure, title: str) -> None:
    place_text(
        fig, (geo.MARGIN, fig.bbox.width / 2), title, ha="center", va="top",
        fontsize=geo.HEAD_POINTS, linespacing=1.25,
    )  # fmt: skip


def colorbar(fig: Figure, grid: geo.Grid, lines: int, scale: tuple[float, float]) -> None:
    """The sheet's one colour scale as a horizontal bar under its title."""
    height, width = grid.size
    top = geo.MARGIN + lines * geo.line_px(geo.HEAD_POINTS) + 10
    bar_w = min(360, width - 2 * geo.MARGIN)
    ax = fig.add_axes(
        ((width - bar_w) / 2 / width, 1.0 - (top + 12) / height, bar_w / width, 12 / height)
    )
    bar = fig.colorbar(
        ScalarMappable(Normalize(*scale), matplotlib.colormaps[CMAP]),
        cax=ax,
        orientation="horizontal",
    )
    bar.ax.tick_params(labelsize=geo.TITLE_POINTS, length=2, pad=1)


def settings_of(features: Mapping[str, Any]) -> dict[str, Any]:
    """The visualize settings held by ``Run.features_of`` output."""
    settings = dict(features.get("settings") or {})
    for key in ("steps", "seed", "space", "low", "high", "preprocess", "samples"):
        if key in features and key not in settings:
            settings[key] = features[key]
    return settings


def sheet_scale(low: float, high: float, planes: Sequence[np.ndarray]) -> tuple[float, float]:
    """The "input" space's one colour scale: the run's pattern range [low, high] (every image
    lies in it), the images' own range where that is not known."""
    values = np.concatenate([p.ravel() for p in planes]) if planes else None
    return dp.value_limits(low, high, values)


def space_of(settings: Mapping[str, Any]) -> tuple[str, float, float]:
    """(space kind, low, high) of the stored images (NaN where a bound is not recorded)."""
    low, high = settings.get("low"), settings.get("high")
    return (
        str(settings.get("space") or "input"),
        math.nan if low is None else float(low),
        math.nan if high is None else float(high),
    )


def cell_pixels(shown: np.ndarray, zoom: dp.Zoom, scale: tuple[float, float] | None) -> np.ndarray:
    """One displayed array as the uint8 pixels of its cell: RGB ((H, W, 3) in [0, 1]) or,
    with ``scale``, a 2-D array through viridis on that scale."""
    reduced = dp.block_mean(shown, zoom.step)
    colours = dp.rgb8(reduced) if scale is None else dp.colormap8(reduced, *scale, lut8(CMAP))
    return dp.enlarge(colours, zoom)


def figure_sheet(features: Mapping[str, Any], layer: str, epoch: int | None = None) -> Figure:
    """The sheet of ``features`` (``Run.features_of`` output) as a figure (see the module)."""
    settings = settings_of(features)
    if epoch is None:
        epoch = features.get("epoch")
    channels = np.asarray(features["channels"], np.int64)
    total = int(channels.size)
    if total == 0:
        raise ValueError(f"no visualized channels of layer {layer!r} to draw")
    n = min(total, geo.MAX_CELLS)
    if n < total:
        log.info("%s: the sheet shows the first %d of %d channels", layer, n, total)
    images = np.asarray(features["images"])[:n]
    space, low, high = space_of(settings)
    shown = [dp.display_image(im, space, low, high) for im in images]
    scale = sheet_scale(low, high, shown) if space == "input" else None
    dataset = np.asarray(features.get("dataset_activation", np.full(total, np.nan)), np.float64)
    activation = np.asarray(features["activation"], np.float64)
    known = bool(np.isfinite(dataset[:n]).any())
    zoom = dp.fit_zoom(*shown[0].shape[:2], geo.picture_box(n))
    picture = zoom.size(*shown[0].shape[:2])
    rows, cols = dp.sheet_grid(n, aspect=1.4 * (picture[0] + 30) / max(picture[1], geo.MIN_CELL_W))
    grid = geo.Grid(rows, cols, picture, 2 if known else 1, head=0)
    title = geo.sheet_title(layer, epoch, total, n, settings, known, scale)
    title = geo.wrap(title, grid.size[1] - 2 * geo.MARGIN)
    lines = title.count("\n") + 1
    grid = geo.Grid(
        rows, cols, picture, 2 if known else 1, geo.head_height(lines, scale is not None)
    )
    page = blank(grid)
    for i, arr in enumerate(shown):
        paste(page, grid.origin(i // cols, i % cols), cell_pixels(arr, zoom, scale))
    fig = page_figure(grid, page)
    head_text(fig, title)
    if scale is not None:
        colorbar(fig, grid, lines, scale)
    for i in range(n):
        text = geo.cell_title(int(channels[i]), float(activation[i]), float(dataset[i]))
        place_text(
            fig, grid.title_at(i // cols, i % cols), text, ha="center", va="bottom",
            fontsize=geo.TITLE_POINTS, linespacing=1.15,
        )  # fmt: skip
    return fig


def draw_sheet(
    features: Mapping[str, Any], layer: str, out: Path | str, epoch: int | None = None
) -> Path:
    """Draw the sheet of ``features`` (``Run.features_of`` output) to ``out`` (PNG, atomic)."""
    return save_figure(figure_sheet(features, layer, epoch), out)
