"""The brain-likeness of each layer as it learns: layers (rows, model order) x epochs
(columns), colour = score, the best layer of each epoch outlined, the noise ceiling marked on
the colour bar."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..analysis import heat_layout as hl
from ..analysis.canvas import new_figure, save_figure
from ..analysis.heatmaps import heat_ticks, write_values
from . import views

BAD = "#dddddd"  # as the analysis heatmaps show a missing value
BEST = "black"
TITLE_POINTS = 11.0


def score_image(
    fig: Figure, ax: Axes, values: np.ndarray, geo: hl.HeatGeometry
) -> tuple[Colorbar, Colormap, Normalize, tuple[float, float]]:
    """``values`` drawn as a score heatmap on ``ax`` (NaN grey) with its colour bar: the colour
    bar, colormap, norm and limits (``views.score_scale``), for the caller's labels and marks."""
    cmap_name, limits = views.score_scale(values)
    cmap = matplotlib.colormaps.get_cmap(cmap_name).with_extremes(bad=BAD)
    norm = Normalize(*limits)
    im = ax.imshow(
        np.ma.masked_invalid(values), cmap=cmap, norm=norm, interpolation="nearest", aspect="auto"
    )
    bar = fig.colorbar(im, ax=ax, fraction=0.05 if geo.width < 12 else 0.025, pad=0.02)
    return bar, cmap, norm, limits


def figure_epochs(
    layers: Sequence[str],
    epochs: Sequence[int],
    values: np.ndarray,
    best: np.ndarray,
    ceiling: tuple[float, float] = (math.nan, math.nan),
    title: str = "",
    label: str = "score",
) -> Figure:
    """``values`` (L, E): each layer's score at each epoch; ``best`` (E,): the best layer's
    row per epoch (-1: none)."""
    values = np.asarray(values, np.float64)
    rows = hl.short_names([str(v) for v in layers])
    cols = [str(int(e)) for e in epochs]
    if values.shape != (len(rows), len(cols)):
        raise ValueError(
            f"values: expected shape ({len(rows)}, {len(cols)}) (layers x epochs), "
            f"received {values.shape}"
        )
    texts = [[hl.cell_text(v, 2) for v in line] for line in values]
    geo = hl.heat_geometry(
        len(rows), len(cols), max(len(r) for r in rows), max(len(c) for c in cols), 5, square=False
    )
    fig = new_figure(geo.width, geo.height + 0.5, layout="constrained")
    ax = fig.add_subplot()
    bar, cmap, norm, limits = score_image(fig, ax, values, geo)
    bar.set_label(f"{label} (dashed: noise ceiling)" if views.band(ceiling) else label)
    _ceiling_on_bar(bar, ceiling, limits)
    heat_ticks(ax, rows, cols, geo)
    ax.set_ylabel("layer (model order)")
    ax.set_xlabel("epoch")
    if geo.value_points is not None:
        write_values(ax, values, texts, cmap, norm, geo.value_points)
    thick = max(1.0, min(2.5, 72 * min(geo.cell_w, geo.cell_h) / 12))
    for col, row in enumerate(np.asarray(best, np.int64)):
        if row >= 0:
            ax.add_patch(
                Rectangle(
                    (col - 0.5, row - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor=BEST,
                    linewidth=thick,
                    zorder=3,
                )
            )
    lo, hi = ceiling
    note = "best layer of each epoch outlined"
    if views.band(ceiling) is not None:
        note += f"; noise ceiling {lo:.3f}..{hi:.3f}"
    full = f"{title}\n{note}" if title else note
    fig.suptitle(views.wrap_lines(full, geo.width - 0.4, TITLE_POINTS), fontsize=TITLE_POINTS)
    return fig


def _ceiling_on_bar(bar: Any, ceiling: tuple[float, float], limits: tuple[float, float]) -> None:
    """The noise ceiling's bounds as dashed lines across the colour bar; a bound beyond the
    scale is written under it."""
    off = []
    for name, v in zip(("lower", "upper"), ceiling, strict=True):
        if not math.isfinite(v):
            continue
        if limits[0] <= v <= limits[1]:
            bar.ax.axhline(v, color="black", linewidth=1.4, linestyle="--")
        else:
            off.append(f"{name} ceiling\n{v:.2f} {'above' if v > limits[1] else 'below'}")
    if off:
        bar.ax.set_xlabel("\n".join(off), fontsize=7)


def draw_epochs(
    layers: Sequence[str],
    epochs: Sequence[int],
    values: np.ndarray,
    best: np.ndarray,
    path: Path | str,
    ceiling: tuple[float, float] = (math.nan, math.nan),
    title: str = "",
    label: str = "score",
) -> Path:
    """Draw the layers x epochs heatmap to ``path`` (PNG, atomically)."""
    return save_figure(figure_epochs(layers, epochs, values, best, ceiling, title, label), path)
