"""Evolution sheets: for one watched pattern and one layer, one cell per recorded epoch.

Every cell of a sheet uses the layer's color scale fixed over all epochs (from the manifest's
min/max), so a brighter cell means larger outputs, not a rescaled image. The figure is built
once per sheet shape and reused across the patterns of a layer (``grids.PagePainter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import timeline
from ..cells import Cell, GridOptions
from ..grids import PagePainter

CELL_INCHES = 2.2
MAX_CELLS = 36
MISSING = "data missing or damaged"


def sheet_cells(
    labels: Sequence[str],
    images: Sequence[np.ndarray | None],
    limits: tuple[float, float],
    page: Sequence[int],
) -> list[Cell]:
    """The cells of one sheet page: for each record index in ``page``, its image titled with
    its label at the layer's fixed color scale ``limits``, or a marked cell when missing."""
    lo, hi = limits
    return [
        Cell(labels[i], image=images[i], vmin=lo, vmax=hi)
        if images[i] is not None
        else Cell(labels[i], problem=MISSING)
        for i in page
    ]


class EvolutionPainter:
    """Draws ``out/evolution/pattern-<p>/<layer dir>[-<page>].png`` sheets."""

    def __init__(self, n_records: int, opts: GridOptions) -> None:
        (rows, cols), self.pages = timeline.sheet_pages(n_records, MAX_CELLS)
        size = (max(4.0, cols * CELL_INCHES), max(3.0, rows * CELL_INCHES + 0.6))
        self.painter = PagePainter(replace(opts, rows=rows, cols=cols, figsize=size, ticks=False))
        for ax in self.painter.axes:
            ax.set_xticks([])
            ax.set_yticks([])

    def draw(
        self,
        out: Path,
        folder: str,
        title: str,
        labels: Sequence[str],
        images: Sequence[np.ndarray | None],
        limits: tuple[float, float],
    ) -> list[Path]:
        """One sheet (or several pages) of ``images`` (one per record, None when missing)."""
        written = []
        lo, hi = limits
        for n, idx in enumerate(self.pages):
            cells = sheet_cells(labels, images, limits, idx)
            name = folder + ("" if len(self.pages) == 1 else f"-{n + 1}") + ".png"
            path = out / name
            page = "" if len(self.pages) == 1 else f" (page {n + 1}/{len(self.pages)})"
            self.painter.draw(
                cells, path, f"{title}{page}\ncolor scale [{lo:.3g}, {hi:.3g}] fixed over epochs"
            )
            written.append(path)
        return written

    def close(self) -> None:
        self.painter.fig.clear()
