"""Minimum and maximum over the finite values (pure): of one array (``array_stats``, with the
count of NaN and infinities), and of several arrays' results (``merge_stats``,
``merge_ranges``). ``None`` stands for "no finite value"; results are Python floats.

The manifest's min/max of each data file and the renderer's color limits both come from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Stats = tuple[float | None, float | None, int]  # (min, max, nonfinite count)


def array_stats(arr: np.ndarray) -> Stats:
    """(min, max, nonfinite count) over the finite values; two passes when all are finite."""
    if arr.size == 0:
        return None, None, 0
    if arr.dtype.kind not in "fc":
        return float(arr.min()), float(arr.max()), 0
    lo, hi = arr.min(), arr.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return float(lo), float(hi), 0
    finite = np.isfinite(arr)
    bad = int(arr.size - np.count_nonzero(finite))
    if bad == arr.size:
        return None, None, bad
    vals = arr[finite]
    return float(vals.min()), float(vals.max()), bad


def merge_ranges(
    mins: Iterable[float | None], maxs: Iterable[float | None]
) -> tuple[float | None, float | None]:
    """The smallest of ``mins`` and the largest of ``maxs``, skipping ``None``."""
    lo = [v for v in mins if v is not None]
    hi = [v for v in maxs if v is not None]
    return (min(lo) if lo else None, max(hi) if hi else None)


def merge_stats(parts: Sequence[Stats]) -> Stats:
    """The statistics of a concatenation from those of its parts."""
    lo, hi = merge_ranges((p[0] for p in parts), (p[1] for p in parts))
    return lo, hi, sum(p[2] for p in parts)
