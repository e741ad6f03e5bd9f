"""Per-pattern pages: a pattern's cells (its stored model inputs first, then every layer's),
cut into grid pages, each page drawn by the raster painter where it can draw it, else by
matplotlib's ``PagePainter`` (which draws an RGB input cell).

Here, not in ``grids``, so imports run one way: this module → raster → grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..store import Run
from . import layout, raster
from .grids import ChunkCache, DrawReport, GridOptions, PagePainter, layer_cell, page_title
from .input_cells import input_cell, input_scales
from .timeline import Timeline


def _remove_stale_pages(folder: Path, n_pages: int) -> None:
    """Drop pages left by an earlier render with a smaller grid (one stat when there are none)."""
    k = n_pages
    while (stale := folder / f"{k}.png").exists():
        stale.unlink()
        k += 1


def draw_patterns(
    run: Run, out: Path, patterns: Sequence[int], epoch: int | None, opts: GridOptions
) -> DrawReport:
    """Write ``out/pattern-<i>/<page>.png`` for each pattern in ``patterns``."""
    report = DrawReport()
    layers = run.layers
    inputs = run.input_records  # none in a run captured without --keep-inputs
    scales = input_scales(run)
    names = (run.info.get("sources") or {}).get("names")  # image file names, when any
    page_cells = layout.pages(len(inputs) + len(layers), opts.rows, opts.cols)
    painters: list[PagePainter | None] = [None] * len(page_cells)  # for pages raster can't draw
    cache = ChunkCache(run)
    # A training run's record: "epoch 3", or "step 96 (epoch 3)" for a run keyed by steps.
    when = None if epoch is None else Timeline.from_run(run.info, run.metrics()).label(epoch)
    try:
        for p in patterns:
            cells = [input_cell(cache, rec, p, scales[rec.name], opts, report) for rec in inputs]
            cells += [layer_cell(cache, name, p, epoch, opts, report) for name in layers]
            for page_index, idx in enumerate(page_cells):
                name = names[p] if names else None
                title = page_title(p, name, when, page_index, len(page_cells))
                page = [cells[i] for i in idx]
                path = out / f"pattern-{p}" / f"{page_index}.png"
                if raster.supports(page):
                    raster.painter(opts, page_index).draw(page, path, title)
                else:
                    painter = painters[page_index] or PagePainter(opts)
                    painters[page_index] = painter
                    painter.draw(page, path, title)
                report.pages += 1
            _remove_stale_pages(out / f"pattern-{p}", len(page_cells))
    finally:
        for painter in painters:
            if painter is not None:
                painter.fig.clear()
    return report
