"""Per-pattern pages: a pattern's cells (its stored model inputs first, then every layer's),
cut into grid pages, each page drawn by the raster painter where it can draw it (an RGB input
cell included: that page is an RGB PNG), else by matplotlib's ``PagePainter`` (a marked cell).

Here, not in ``grids``, so imports run one way: this module → raster → grids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..store import Run
from . import layout, raster
from .cells import ChunkCache, DrawReport, GridOptions, layer_cell
from .grids import PagePainter, page_title
from .input_cells import input_cell, input_scales
from .timeline import Timeline

_PAGE = re.compile(r"[0-9]+\.png")
_CACHE: list[ChunkCache] = []  # the last run's open data files, kept from piece to piece


def _chunk_cache(run: Run) -> ChunkCache:
    if not _CACHE or _CACHE[0].run is not run:
        _CACHE[:] = [ChunkCache(run)]
    return _CACHE[0]


def _remove_stale_pages(folder: Path, n_pages: int) -> None:
    """Drop pages left by an earlier render with another grid or page count: every
    ``<digits>.png`` in ``folder`` that is not one of this render's page names."""
    if not folder.is_dir():
        return
    keep = {layout.page_name(i, n_pages) for i in range(n_pages)}
    with os.scandir(folder) as entries:
        stale = [e.path for e in entries if _PAGE.fullmatch(e.name) and e.name not in keep]
    for path in stale:
        os.unlink(path)


def draw_patterns(
    run: Run,
    out: Path,
    patterns: Sequence[int],
    epoch: int | None,
    opts: GridOptions,
    pages: Sequence[int] | None = None,
) -> DrawReport:
    """Write ``out/pattern-<i>/<page>.png`` for each pattern in ``patterns`` (page names
    zero-padded to the page count's width: ``layout.page_name``); with ``pages``, only those
    pages (indices into the pattern's pages) and only the data their cells show."""
    report = DrawReport()
    layers = run.layers
    inputs = run.input_records  # none in a run captured without --keep-inputs
    scales = input_scales(run)
    names = (run.info.get("sources") or {}).get("names")  # image file names, when any
    page_cells = layout.pages(len(inputs) + len(layers), opts.rows, opts.cols)
    drawn = range(len(page_cells)) if pages is None else pages
    needed = {i for page_index in drawn for i in page_cells[page_index]}
    painters: list[PagePainter | None] = [None] * len(page_cells)  # for pages raster can't draw
    cache = _chunk_cache(run)
    # A training run's record: "epoch 3", or "step 96 (epoch 3)" for a run keyed by steps.
    when = None if epoch is None else Timeline.from_run(run.info, run.metrics()).label(epoch)
    try:
        for p in patterns:
            cells = [
                input_cell(cache, rec, p, scales[rec.name], opts, report) if i in needed else None
                for i, rec in enumerate(inputs)
            ]
            cells += [
                layer_cell(cache, name, p, epoch, opts, report)
                if len(inputs) + i in needed
                else None
                for i, name in enumerate(layers)
            ]
            for page_index in drawn:
                idx = page_cells[page_index]
                name = names[p] if names else None
                title = page_title(p, name, when, page_index, len(page_cells))
                page = [cells[i] for i in idx]
                path = out / f"pattern-{p}" / layout.page_name(page_index, len(page_cells))
                if opts.raster and raster.supports(page):
                    raster.painter(opts).draw(page, path, title)
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
