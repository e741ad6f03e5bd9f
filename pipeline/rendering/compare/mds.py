"""A 2-D classical MDS map of one layer's RDM: each condition a point, coloured by its label,
so that conditions the layer represents alike lie close together."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..analysis.canvas import new_figure, save_figure
from . import rdm_order, views

POINT = "#4c72b0"
MAX_LEGEND = 20  # more labels than this get a colour bar instead of a legend


def figure_mds(
    coords: np.ndarray,
    labels: np.ndarray | None = None,
    title: str = "",
    names: Sequence[str] = (),
) -> Figure:
    """``coords`` (N, 2) (NaN rows: conditions left out), points coloured by ``labels``;
    ``names[v]`` is the legend's name of label ``v`` where there is one."""
    coords = np.asarray(coords, np.float64)
    n = coords.shape[0]
    fig = new_figure(7.0, 6.2, layout="constrained")
    ax = fig.add_subplot()
    kept = np.isfinite(coords).all(axis=1)
    size = float(np.clip(2400.0 / max(n, 1), 4.0, 40.0))
    if labels is None:
        ax.scatter(coords[kept, 0], coords[kept, 1], s=size, color=POINT, linewidths=0)
    else:
        labels = np.asarray(labels).reshape(-1)
        values = np.unique(labels)
        if values.size <= MAX_LEGEND:
            cmap = matplotlib.colormaps.get_cmap("tab10" if values.size <= 10 else "tab20")
            for i, v in enumerate(values):
                at = kept & (labels == v)
                ax.scatter(
                    coords[at, 0],
                    coords[at, 1],
                    s=size,
                    color=cmap(i),
                    linewidths=0,
                    label=_name(v, names),
                )
            ax.legend(
                title="label",
                fontsize=8,
                title_fontsize=8,
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                markerscale=max(1.0, 30 / size) ** 0.5,
            )
        else:
            points = ax.scatter(
                coords[kept, 0],
                coords[kept, 1],
                s=size,
                c=labels[kept],
                cmap="viridis",
                linewidths=0,
            )
            fig.colorbar(points, ax=ax, fraction=0.05, pad=0.02).set_label("label")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("MDS dimension 1")
    ax.set_ylabel("MDS dimension 2")
    left = int(n - kept.sum())
    if left:
        title += f"\n{left} conditions with NaN dissimilarities left out"
    if title:
        ax.set_title(views.wrap_lines(title, 6.5, 11.0), fontsize=11)
    return fig


def _name(value: object, names: Sequence[str]) -> str:
    index = int(value) if isinstance(value, (int, np.integer)) else -1
    return names[index] if 0 <= index < len(names) else str(value)


def draw_mds(
    rdm: np.ndarray,
    path: Path | str,
    labels: np.ndarray | None = None,
    title: str = "",
    names: Sequence[str] = (),
) -> Path:
    """Draw the classical MDS map of ``rdm`` (N, N) to ``path`` (PNG, atomically)."""
    return save_figure(figure_mds(rdm_order.classical_mds(rdm, 2), labels, title, names), path)
