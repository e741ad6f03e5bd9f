"""Annotated heatmaps: CKA between a run's layers, between two runs' layers, between each
layer's epochs and its last one, and each class's mean channel activation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from ...errors import ConfigError
from . import heat_layout as hl
from .canvas import new_figure, save_figure

CKA_CMAP = "magma"
TITLE_POINTS = 11.0


def draw_cka(
    names_rows: Sequence[str],
    names_cols: Sequence[str],
    matrix: np.ndarray,
    path: Path | str,
    title: str = "linear CKA between layers",
    row_label: str = "layer",
    col_label: str = "layer",
) -> Path:
    """A CKA matrix (rows x columns of layers) on a 0..1 scale, values written in the cells."""
    return _heatmap(
        [str(n) for n in names_rows],
        [str(n) for n in names_cols],
        np.asarray(matrix, np.float64),
        path,
        title,
        row_label,
        col_label,
        CKA_CMAP,
        (0.0, 1.0),
        "CKA",
        digits=2,
    )


def draw_cross_cka(
    names_rows: Sequence[str],
    names_cols: Sequence[str],
    matrix: np.ndarray,
    path: Path | str,
    run: str,
    other: str,
) -> Path:
    """CKA between this run's layers (rows) and another run's (columns) on the same patterns."""
    return draw_cka(
        names_rows,
        names_cols,
        matrix,
        path,
        title=f"linear CKA between the layers of {run} and of {other}",
        row_label=f"layers of {run}",
        col_label=f"layers of {other}",
    )


def draw_epoch_cka(
    names: Sequence[str], epochs: Sequence[int], matrix: np.ndarray, path: Path | str
) -> Path:
    """Each layer's CKA (rows) between its output at every watched epoch (columns) and its
    output at the last one."""
    last = int(epochs[-1]) if len(epochs) else None
    return draw_cka(
        names,
        [str(int(e)) for e in epochs],
        matrix,
        path,
        title=f"linear CKA of each layer between every epoch and the last (epoch {last})",
        row_label="layer",
        col_label="epoch",
    )


def draw_classes(
    classes: Sequence[int] | np.ndarray,
    names: Sequence[str] | None,
    cmeans: np.ndarray,
    path: Path | str,
    layer: str | None = None,
) -> Path:
    """Each class's mean channel activation (classes x channels). ``names``: class names in
    the order of ``classes`` (None: the class numbers). Values of both signs get a diverging
    scale centred on 0."""
    values = np.asarray(cmeans, np.float64)
    labels = [str(n) for n in names] if names is not None else [str(int(c)) for c in classes]
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo < 0 < hi:
        top = max(-lo, hi)
        cmap, limits = "RdBu_r", (-top, top)
    else:
        cmap, limits = "viridis", (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    title = "mean channel activation per class" + (f": {layer}" if layer else "")
    return _heatmap(
        labels,
        [str(c) for c in range(values.shape[1])],
        values,
        path,
        title,
        "class",
        "channel",
        cmap,
        limits,
        "mean activation",
        digits=2,
        square=False,
    )


def _heatmap(
    rows: list[str],
    cols: list[str],
    values: np.ndarray,
    path: Path | str,
    title: str,
    row_label: str,
    col_label: str,
    cmap: str,
    limits: tuple[float, float],
    bar_label: str,
    digits: int,
    square: bool = True,
) -> Path:
    if values.shape != (len(rows), len(cols)):
        raise ConfigError(
            f"heatmap values: expected shape ({len(rows)}, {len(cols)}) (rows x columns), "
            f"received {values.shape}"
        )
    row_names, col_names = hl.short_names(rows), hl.short_names(cols)
    texts = [[hl.cell_text(v, digits) for v in line] for line in values]
    widest = max((len(t) for line in texts for t in line), default=1)
    geo = hl.heat_geometry(
        len(rows),
        len(cols),
        max((len(n) for n in row_names), default=1),
        max((len(n) for n in col_names), default=1),
        widest,
        square,
    )
    fig = new_figure(geo.width, geo.height, layout="constrained")
    ax = fig.add_subplot()
    colormap = matplotlib.colormaps.get_cmap(cmap).with_extremes(bad="#dddddd")
    norm = Normalize(*limits)
    im = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=colormap,
        norm=norm,
        interpolation="nearest",
        aspect="auto",
    )
    bar = fig.colorbar(im, ax=ax, fraction=0.05 if geo.width < 12 else 0.025, pad=0.02)
    bar.set_label(bar_label)
    heat_ticks(ax, row_names, col_names, geo)
    ax.set_ylabel(row_label)
    ax.set_xlabel(col_label)
    ax.set_title(hl.wrap_title(title, geo.width - 0.5, TITLE_POINTS), fontsize=TITLE_POINTS)
    if geo.value_points is not None:
        write_values(ax, values, texts, colormap, norm, geo.value_points)
    return save_figure(fig, path)


def heat_ticks(ax: Any, rows: list[str], cols: list[str], geo: hl.HeatGeometry) -> None:
    ax.set_yticks(range(len(rows)), rows, fontsize=geo.row_points)
    if geo.col_step == 1:
        ax.set_xticks(range(len(cols)), cols, fontsize=geo.col_points, rotation=geo.rotate)
    else:  # many numbered columns: integer ticks a readable distance apart
        most = max(len(cols) // geo.col_step, 2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=most, integer=True, min_n_ticks=2))
        ax.tick_params(axis="x", labelsize=geo.col_points)
    ax.tick_params(length=2)


def write_values(
    ax: Any, values: np.ndarray, texts: list[list[str]], cmap: Any, norm: Any, points: float
) -> None:
    colours = cmap(norm(np.nan_to_num(values, nan=norm.vmin)))
    for r, line in enumerate(texts):
        for c, text in enumerate(line):
            if text:
                ax.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=points,
                    color=hl.ink(colours[r, c]),
                )
