"""The reference RDM beside each layer's RDM: every matrix rank-transformed (0 = most similar
pair, 1 = most dissimilar), conditions in one order grouped by label with thin lines between
the groups, reduced by block means when there are many conditions, each titled with its layer
and score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..analysis import heat_layout as hl
from ..analysis.canvas import new_figure, save_figure
from . import rdm_order, views

CMAP = "viridis"
BAD = "#dddddd"
GROUP_LINE = "white"
PANEL_INCHES = 2.6
DISPLAY = 240  # most rows and columns a panel shows (about its size in pixels)
TITLE_POINTS = 9.0


@dataclass(frozen=True)
class Panel:
    """One shown RDM: rank-transformed, ordered, downsampled."""

    title: str
    image: np.ndarray | None  # None: the RDM could not be read (the title says why)


def display_rdm(rdm: np.ndarray, order: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    """``rdm`` as a panel shows it: ranks in [0, 1], conditions in ``order``, block means down
    to at most ``size`` x ``size``."""
    ranked = rdm_order.rank_transform(rdm)
    return rdm_order.downsample(ranked[np.ix_(order, order)], size)


def figure_rdms(
    panels: Sequence[Panel],
    n: int,
    groups: Sequence[tuple[int, int, int]] = (),
    title: str = "",
    size: int = DISPLAY,
) -> Figure:
    """A sheet of RDM panels (the reference first) of ``n`` conditions shown at most ``size``
    blocks wide, with lines between the label ``groups``."""
    rows, cols = views.panel_grid(len(panels))
    width = cols * PANEL_INCHES + 1.2
    fig = new_figure(width, rows * (PANEL_INCHES + 0.45) + 0.9, layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    cmap = matplotlib.colormaps.get_cmap(CMAP).with_extremes(bad=BAD)
    lines = views.boundaries(groups, n, size)
    image = None
    axes = []
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        axes.append(ax)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel.title, fontsize=TITLE_POINTS)
        if panel.image is None:
            ax.text(
                0.5,
                0.5,
                "not readable",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=9,
            )
            continue
        image = ax.imshow(
            np.ma.masked_invalid(panel.image),
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
        for v in lines:
            ax.axhline(v, color=GROUP_LINE, linewidth=0.6)
            ax.axvline(v, color=GROUP_LINE, linewidth=0.6)
    if image is not None:
        bar = fig.colorbar(
            image, ax=axes, fraction=0.03, pad=0.02, shrink=min(1.0, 0.9 / rows + 0.1)
        )
        bar.set_label("rank of dissimilarity (0 = most similar pair)", fontsize=8)
    if title:
        fig.suptitle(views.wrap_lines(title, width - 0.3, 11.0), fontsize=11)
    return fig


def panel_title(name: str, method: str, score: float | None) -> str:
    """A layer panel's title: its name (shortened) and its score."""
    short = hl.shorten(name, 28)
    if score is None:
        return short
    return f"{short}\n{method} {score:.3f}" if math.isfinite(score) else f"{short}\n{method} n/a"


def draw_rdms(
    panels: Sequence[Panel],
    n: int,
    path: Path | str,
    groups: Sequence[tuple[int, int, int]] = (),
    title: str = "",
    size: int = DISPLAY,
) -> Path:
    """Draw the RDM sheet to ``path`` (PNG, atomically)."""
    return save_figure(figure_rdms(panels, n, groups, title, size), path)
