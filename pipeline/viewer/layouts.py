"""Which value each canvas pixel of the viewer shows: render's cell layout, served to the page.

The app (``assets/app.js``) holds no layout rule of its own. For a per-pattern output shape,
``cell_layout`` answers render's choices (``pipeline/rendering/layout.py``: ``to_image`` with
its near-square vectors and channel mosaics, ``rank_note``, ``shape_label``) as a few
rectangular blocks of pixels the page expands without knowing why they lie where they do:

    block [row, col, height, width, offset, row_step, col_step]: pixel (row + y, col + x),
    for 0 <= y < height and 0 <= x < width, shows value offset + y * row_step + x * col_step
    of the C-ordered values (of their mean over the first axis when ``mean_over`` is set);
    a pixel no block covers is padding.

A channel mosaic is one block per channel tile, a vector two (the full rows, then the last
partial one), anything else one. ``channel`` gives the same for a single channel's (H, W) map
(channel k: offset k), which the analysis view's thumbnails draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..rendering.layout import (
    MAX_CHANNELS,
    mosaic_shape,
    near_square,
    rank_note,
    shape_label,
    tile_origins,
)

Block = list[int]  # [row, col, height, width, offset, row_step, col_step]


def _vector_blocks(n: int) -> tuple[int, int, list[Block]]:
    rows, cols = near_square(n)  # vector_image: row-major, padded after the last value
    full, rest = divmod(n, cols) if cols else (0, 0)
    blocks = [[0, 0, full, cols, 0, cols, 1]] if full else []
    if rest:
        blocks.append([full, 0, 1, rest, full * cols, 0, 1])
    return rows, cols, blocks


def _mosaic_blocks(
    shape: tuple[int, int, int], max_channels: int
) -> tuple[int, int, list[Block], list[int]]:
    h, w, c = shape  # channel_mosaic of a C-contiguous (H, W, C) array: value (y, x, k) at
    rows, cols = mosaic_shape(shape, max_channels)  # (y * w + x) * c + k, as mosaic_sources
    origins = tile_origins(shape, max_channels)
    blocks = [[r, q, h, w, k, w * c, c] for k, (r, q) in enumerate(origins)]
    return max(rows, 0), max(cols, 0), blocks, [h, w, w * c, c]


def cell_layout(shape: Sequence[int], max_channels: int = MAX_CHANNELS) -> dict[str, Any]:
    """How one pattern's output of ``shape`` is drawn, as render's ``to_image`` draws it:

    ``label`` and ``note`` (the cell title's shape and what it shows beyond the raw array),
    ``mean_over`` (D of a (D, H, W, C) volume, averaged over D first; else None), ``source``
    (the shape the blocks' flat indices refer to, C order), ``h`` x ``w`` (the image),
    ``blocks`` (see the module's docstring) and ``channel`` ([H, W, row_step, col_step] of
    one channel's map of a rank-3 or rank-4 output, else None).
    """
    dims = tuple(int(v) for v in shape)
    if any(v < 0 for v in dims):
        raise ValueError(f"shape: expected sizes >= 0, got {dims}")
    rank = len(dims)
    source, mean_over, channel = dims, None, None
    if rank == 0:
        h, w, blocks = 1, 1, [[0, 0, 1, 1, 0, 0, 0]]
    elif rank == 1:
        h, w, blocks = _vector_blocks(dims[0])
    elif rank == 2:
        h, w = dims
        blocks = [[0, 0, h, w, 0, w, 1]] if h and w else []
    elif rank in (3, 4):
        if rank == 4:
            mean_over, source = dims[0], dims[1:]
        h, w, blocks, channel = _mosaic_blocks(source, max_channels)  # type: ignore[arg-type]
    else:  # flattened to (first axis, the rest)
        h, w = dims[0], math.prod(dims[1:])
        blocks = [[0, 0, h, w, 0, w, 1]] if h and w else []
    return {
        "shape": list(dims),
        "label": shape_label(dims),
        "note": rank_note(dims, max_channels),
        "mean_over": mean_over,
        "source": list(source),
        "h": h,
        "w": w,
        "blocks": blocks,
        "channel": channel,
    }
