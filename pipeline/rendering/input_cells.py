"""Cells of the model inputs stored with a run (``--keep-inputs``): each pattern's first cells,
one per model input, titled ``input <name> <shape>``, before the layers' cells.

How an input is drawn (``rgb_scale``, pure): an (H, W, 3) input is a colour picture when its
values lie in [0, 1] (floats, drawn as they are) or in [0, 255] (``uint8``, or floats above 1:
divided by 255) over the whole run, decided once from its files' manifest min/max, so every
pattern is scaled alike and no file is read for it. Any other input (an (H, W, 3) one with
negative or larger values, normalized pictures for instance) is drawn through the colormap like
a layer output, an (H, W, 1) one as its (H, W) map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import PassageError
from ..store import Run
from ..store.runinfo import InputRecord
from ..store.stats import array_stats, merge_ranges
from . import layout
from .cells import Cell, ChunkCache, DrawReport, GridOptions, data_cell, problem_cell


def rgb_scale(
    shape: Sequence[int | None], dtype: str, lo: float | None, hi: float | None
) -> float | None:
    """What to divide an input of per-pattern ``shape`` and stored ``dtype`` by to draw it as
    an RGB picture in [0, 1], given the smallest and largest value of all its patterns
    (``lo``, ``hi``); None: not a picture, draw it through the colormap."""
    if len(shape) != 3 or shape[-1] != 3:
        return None
    if dtype == "uint8":
        return 255.0
    if lo is None or hi is None or lo < 0:
        return None
    if hi <= 1:
        return 1.0
    return 255.0 if hi <= 255 else None


def input_scales(run: Run) -> dict[str, float | None]:
    """``rgb_scale`` of each stored input of ``run``, by name (from the manifest alone)."""
    scales = {}
    for rec in run.input_records:
        entries = run.input_chunks(rec.name)
        lo, hi = merge_ranges((e.min for e in entries), (e.max for e in entries))
        dtype = entries[0].dtype if entries else rec.dtype
        scales[rec.name] = rgb_scale(rec.shape, dtype, lo, hi)
    return scales


def input_image(data: np.ndarray, scale: float) -> np.ndarray:
    """One pattern of a picture input as a cell image: RGB (H, W, 3) in [0, 1]."""
    return np.clip(np.asarray(data, np.float32) / np.float32(scale), 0.0, 1.0)


def input_cell(
    cache: ChunkCache,
    rec: InputRecord,
    pattern: int,
    scale: float | None,
    opts: GridOptions,
    report: DrawReport | None = None,
) -> Cell:
    """The cell of one stored input for one pattern; a damaged file becomes a marked cell
    (recorded in ``report``), or, with ``opts.strict``, a RenderError."""
    name = f"input {rec.name}"
    try:
        data = cache.get(rec.key, pattern, None)
    except PassageError as exc:
        what = f"pattern {pattern}, input {rec.name!r}"
        return problem_cell(exc, what, layout.cell_title(name, rec.shape), opts, report)
    shape = data.shape
    if scale is not None:
        lo, hi, nonfinite = array_stats(data)
        image = input_image(data, scale)
        caption = layout.value_caption(lo, hi, nonfinite)
        return Cell(
            layout.cell_title(name, shape), image=image, vmin=0.0, vmax=1.0, caption=caption
        )
    # through the colormap like a layer output (value line, constant note); an (H, W, 1) input
    # as its (H, W) map, not a one-tile mosaic, still titled with its stored shape
    one_map = len(shape) == 3 and shape[-1] == 1
    cell = data_cell(name, np.asarray(data[..., 0] if one_map else data, np.float32), opts)
    return replace(cell, title=layout.cell_title(name, shape, opts.max_channels))
