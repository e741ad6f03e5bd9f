"""One summary sheet per layer: its mean, std and fraction-positive maps (render's drawing
rules, dead channels marked), the histogram of all its values (log counts) and each
channel's mean ± std over the patterns (dead channels in red)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .. import layout
from . import maps
from .canvas import new_figure, save_figure

MARK = "#c00000"  # dead channels, as render marks damaged cells
BAR = "#4c72b0"
MAPS = (("mean", "mean", None), ("std", "std (population)", None))
FRACTION = ("frac_positive", "fraction of patterns > 0", (0.0, 1.0))


def draw_summary(
    result: Mapping[str, np.ndarray],
    layer: str,
    shape: Sequence[int],
    path: Path | str,
    cmap: str = "viridis",
    max_channels: int = 64,
    patterns: int | None = None,
    epoch: int | None = None,
) -> Path:
    """Draw ``layer``'s summary sheet from its analysis ``result`` to ``path`` (PNG).

    ``patterns`` (the title's pattern count) defaults to the largest finite-value count.
    """
    shape = tuple(int(v) for v in shape)
    dead = np.asarray(result["dead"], bool)
    if patterns is None:
        patterns = int(np.max(result["count"])) if np.size(result["count"]) else 0
    colormap = matplotlib.colormaps.get_cmap(cmap).with_extremes(bad="white")
    fig = new_figure(16.0, 10.0)
    grid = fig.add_gridspec(2, 6, height_ratios=(1.35, 1.0), hspace=0.42, wspace=0.9)
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.07, top=0.86)
    fig.suptitle(
        maps.sheet_title(layer, shape, patterns, dead, epoch, max_channels), fontsize=13, y=0.985
    )
    marks = maps.dead_marks(shape, dead, max_channels)
    for i, (key, title, fixed) in enumerate((*MAPS, FRACTION)):
        ax = fig.add_subplot(grid[0, 2 * i : 2 * i + 2])
        _map_panel(
            fig, ax, np.asarray(result[key]), title, fixed, shape, marks, colormap, max_channels
        )
    _histogram(
        fig.add_subplot(grid[1, :2]),
        np.asarray(result["hist_edges"]),
        np.asarray(result["hist_counts"]),
        int(result["nonfinite"]),
    )
    _channels(
        fig.add_subplot(grid[1, 2:]),
        np.asarray(result["channel_mean"], np.float64),
        np.asarray(result["channel_std"], np.float64),
        dead,
    )
    return save_figure(fig, path)


def _map_panel(
    fig: Any,
    ax: Any,
    values: np.ndarray,
    title: str,
    fixed: tuple[float, float] | None,
    shape: tuple[int, ...],
    marks: maps.DeadMarks,
    cmap: Any,
    max_channels: int,
) -> None:
    image = maps.panel_image(values, max_channels)
    vmin, vmax = maps.panel_limits(image, fixed)
    im = ax.imshow(
        np.ma.masked_invalid(image),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect=layout.aspect_for(image.shape),
    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    lo, hi = maps.finite_range(image)
    missing = int(np.count_nonzero(~np.isfinite(values)))
    caption = layout.value_caption(lo, hi)
    caption += f", {missing} without a finite value" if missing else ""
    ax.set_title(f"{title}\n{caption}", fontsize=10)
    mosaic = len(shape) in (3, 4)
    if mosaic or len(shape) == 1:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(integer=True))
    if len(shape) == 2:
        ax.set_xlabel("channel (last axis)", fontsize=8)
    if mosaic:
        ax.set_xlabel("tiles: channels in row-major order", fontsize=8)
        _tile_labels(fig, ax, shape, image.shape, max_channels)
    if len(shape) == 1:
        ax.set_xlabel("units row by row", fontsize=8)
    _draw_marks(ax, marks)


def _tile_labels(
    fig: Any, ax: Any, shape: tuple[int, ...], image_shape: tuple[int, ...], max_channels: int
) -> None:
    """Channel indices at the tiles' corners, as render labels them (none when too small)."""
    box = ax.get_position()
    scale = layout.display_scale(
        box.width * fig.bbox.width, box.height * fig.bbox.height, image_shape
    )
    labels = layout.channel_labels(shape, max_channels)
    if not labels:
        return
    points = layout.label_points(scale * shape[-2], fig.dpi, len(labels[-1][2]))
    if points is None:
        return
    frame = {"boxstyle": "square,pad=0.12", "facecolor": "black", "edgecolor": "none"}
    for row, col, text in labels:
        ax.text(
            col - 0.5,
            row - 0.5,
            text,
            color="white",
            fontsize=min(points, 8.0),
            ha="left",
            va="top",
            bbox=frame,
            clip_on=True,
        )


def _draw_marks(ax: Any, marks: maps.DeadMarks) -> None:
    """Dead channels: a red frame and cross over their tile, a red x on their pixel, a red
    triangle over their column."""
    if marks.tiles:
        frames = [Rectangle((c - 0.5, r - 0.5), w, h) for r, c, h, w in marks.tiles]
        ax.add_collection(
            PatchCollection(frames, facecolor="none", edgecolor=MARK, linewidth=1.6, zorder=3)
        )
        xs: list[float | None] = []
        ys: list[float | None] = []
        for r, c, h, w in marks.tiles:
            xs += [c - 0.5, c + w - 0.5, None, c - 0.5, c + w - 0.5, None]
            ys += [r - 0.5, r + h - 0.5, None, r + h - 0.5, r - 0.5, None]
        ax.plot(xs, ys, color=MARK, linewidth=0.9, zorder=3)
    if marks.pixels:
        rows, cols = zip(*marks.pixels, strict=True)
        ax.scatter(cols, rows, marker="x", color=MARK, s=18, linewidths=1.2, zorder=3)
    if marks.columns:
        ax.scatter(
            marks.columns,
            [1.0] * len(marks.columns),
            marker="v",
            color=MARK,
            s=40,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            zorder=3,
        )
    if marks.hidden:
        ax.text(
            0.5,
            -0.1,
            f"+{marks.hidden} dead channels past the shown ones",
            color=MARK,
            fontsize=8,
            ha="center",
            va="top",
            transform=ax.transAxes,
        )


def _histogram(ax: Any, edges: np.ndarray, counts: np.ndarray, nonfinite: int) -> None:
    shown = maps.histogram_edges(edges)
    title = "all values, log counts"
    title += f"\n{nonfinite} NaN/inf excluded" if nonfinite else ""
    ax.set_title(title, fontsize=10, color=MARK if nonfinite else "black")
    if shown is None or not np.any(counts > 0):
        ax.text(0.5, 0.5, "no finite value", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.bar(shown[:-1], counts, width=np.diff(shown), align="edge", color=BAR, log=True)
    ax.set_xlim(shown[0], shown[-1])
    ax.set_ylim(bottom=0.5)  # a bin of one value stays visible
    ax.set_xlabel("value", fontsize=9)
    ax.set_ylabel("count", fontsize=9)


def _channels(ax: Any, mean: np.ndarray, std: np.ndarray, dead: np.ndarray) -> None:
    """Each channel's activation over the patterns: mean ± std, dead channels in red."""
    x = np.arange(mean.size)
    if maps.channel_style(mean.size) == "bars":
        colors = np.where(dead, MARK, BAR)
        ax.bar(x, mean, yerr=std, color=colors, ecolor="#555555", capsize=0, width=0.8)
    else:
        ax.plot(x, mean, color=BAR, linewidth=1.0)
        ax.fill_between(x, mean - std, mean + std, color=BAR, alpha=0.25, linewidth=0)
        ax.scatter(x[dead], mean[dead], color=MARK, marker="x", s=24, zorder=3)
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    empty = ~np.isfinite(mean)
    if empty.any():  # no finite value: a grey ring on the zero line
        ax.scatter(
            x[empty],
            np.zeros(int(empty.sum())),
            marker="o",
            s=28,
            zorder=3,
            facecolors="none",
            edgecolors="#777777",
        )
    missing = int(np.count_nonzero(empty))
    title = "channel activation (mean over the other axes): mean ± std over patterns"
    title += f"; dead in red ({int(dead.sum())})" if dead.any() else ""
    title += f"; {missing} without a finite value (grey rings)" if missing else ""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("channel", fontsize=9)
    ax.set_xlim(-0.7, mean.size - 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
