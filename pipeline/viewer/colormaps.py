"""Colormaps as lookup tables for the browser: matplotlib's own numbers, 256 entries each.

The page colors a value by ``lut[round((v - lo) / (hi - lo) * 255)]``; the entries are
matplotlib's colormap sampled at the centres of 256 equal bins (``cmap((i + 0.5) / 256)``, what
``imshow`` draws for a 256-entry colormap), so a viewer cell and a rendered picture agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np

from ..errors import ConfigError

NAMES = ("viridis", "magma", "inferno", "plasma", "cividis", "gray", "coolwarm", "RdBu_r")
SIZE = 256


@cache
def _table(name: str) -> np.ndarray:
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ConfigError(
            f"unknown colormap {name!r}; expected a matplotlib colormap such as {', '.join(NAMES)}"
        ) from None
    table = cmap((np.arange(SIZE) + 0.5) / SIZE, bytes=True)[:, :3]
    table.setflags(write=False)
    return table


def lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB lookup table of matplotlib's colormap ``name``."""
    return _table(name).copy()


def colormaps_json(names: Iterable[str] = NAMES) -> dict[str, Any]:
    """``{"names": [...], "luts": {name: [[r, g, b] x 256]}}`` (the ``/api/colormaps`` payload,
    a plain dict ready for ``orjson.dumps``)."""
    names = list(names)
    return {"names": names, "luts": {n: _table(n).tolist() for n in names}}
