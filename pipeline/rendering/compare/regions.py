"""Regions x layers: each brain region's score against every layer, the layer its data prefer
outlined (with the fraction of bootstrap samples in which it stays best), the layer named
after the region outlined dashed, and one line per region saying whether the two agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..analysis import heat_layout as hl
from ..analysis.canvas import new_figure, save_figure
from ..analysis.heatmaps import heat_ticks, write_values
from . import views
from .epochs import score_image

BEST = "black"
NAMED = "#c00000"
TITLE_POINTS = 11.0
LINE_POINTS = 9.0


def figure_regions(view: views.Regions, title: str = "", label: str = "score") -> Figure:
    """The regions x layers heatmap of ``view``."""
    rows, cols = view.regions, hl.short_names(view.layers)
    values = np.asarray(view.scores, np.float64)
    texts = [[hl.cell_text(v, 2) for v in line] for line in values]
    geo = hl.heat_geometry(
        len(rows), len(cols), max(len(r) for r in rows), max(len(c) for c in cols), 5, square=True
    )
    lines = [
        views.agreement_line(
            view.regions[r],
            view.layers,
            int(view.best[r]),
            float(view.best_p[r]),
            int(view.named[r]),
            int(view.agrees[r]),
        )
        for r in range(len(rows))
    ]
    width = max(geo.width, 0.56 * LINE_POINTS / 72 * max(len(s) for s in lines) + 0.6)
    extra = (len(lines) + 1) * LINE_POINTS * 1.5 / 72
    fig = new_figure(width, geo.height + extra + 0.4, layout="constrained")
    ax = fig.add_subplot()
    bar, cmap, norm, _ = score_image(fig, ax, values, geo)
    bar.set_label(label)
    heat_ticks(ax, rows, cols, geo)
    ax.set_ylabel("region")
    ax.set_xlabel("layer (model order)")
    if geo.value_points is not None:
        write_values(ax, values, texts, cmap, norm, geo.value_points)
    for r in range(len(rows)):
        b, m = int(view.best[r]), int(view.named[r])
        if b >= 0:
            ax.add_patch(
                Rectangle(
                    (b - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=BEST, linewidth=2.2, zorder=3
                )
            )
        if m >= 0:
            ax.add_patch(
                Rectangle(
                    (m - 0.42, r - 0.42),
                    0.84,
                    0.84,
                    fill=False,
                    edgecolor=NAMED,
                    linewidth=1.6,
                    linestyle="--",
                    zorder=4,
                )
            )
    when = f" (epoch {view.epoch})" if view.epoch is not None else ""
    head = title or "brain regions x layers"
    note = "black frame: best layer of the region; dashed red: the layer named after it"
    fig.suptitle(
        views.wrap_lines(f"{head}{when}\n{note}", width - 0.4, TITLE_POINTS), fontsize=TITLE_POINTS
    )
    fig.text(
        0.01, 0.005, "\n".join(lines), fontsize=LINE_POINTS, ha="left", va="bottom", linespacing=1.4
    )
    engine = fig.get_layout_engine()
    if engine is not None:  # the lines of agreement get the strip under the heatmap
        engine.set(rect=(0.0, extra / fig.get_figheight(), 1.0, 1.0 - extra / fig.get_figheight()))
    return fig


def draw_regions_matrix(
    view: views.Regions, path: Path | str, title: str = "", label: str = "score"
) -> Path:
    """Draw the regions x layers heatmap to ``path`` (PNG, atomically)."""
    return save_figure(figure_regions(view, title, label), path)
