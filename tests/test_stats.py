"""Finite min/max, one rule for the store and the renderer: the manifest's min/max of a file
(``array_stats``), a grid cell's own color limits (``auto_limits``) and a fixed color scale
over several files (``fixed_limits``) skip NaN and infinities the same way."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.rendering.grids import auto_limits
from pipeline.rendering.layout import color_limits, fixed_limits
from pipeline.store.stats import array_stats, merge_ranges, merge_stats

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("values", "dtype", "want"),
    [
        ([1.5, NAN, -INF, 3.0, INF], np.float32, (1.5, 3.0, 3)),
        ([2.0, -1.0], np.float16, (-1.0, 2.0, 0)),
        ([NAN, INF], np.float64, (None, None, 2)),
        ([], np.float32, (None, None, 0)),
        ([7, -3, 5], np.int16, (-3.0, 7.0, 0)),
        ([True, False], np.bool_, (0.0, 1.0, 0)),
    ],
)
def test_array_stats_over_finite_values(values, dtype, want):
    got = array_stats(np.array(values, dtype=dtype))
    assert got == want
    assert all(v is None or type(v) is float for v in got[:2])


def test_merged_stats_equal_those_of_the_concatenation():
    parts = [np.array(p, np.float32) for p in ([NAN, 4.0], [], [INF, -2.0, 1.0], [NAN])]
    assert merge_stats([array_stats(p) for p in parts]) == array_stats(np.concatenate(parts))
    assert merge_ranges([None, 3.0, -1.0], [None, 2.0]) == (-1.0, 2.0)
    assert merge_ranges([None], []) == (None, None)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([[NAN, 2.0], [INF, -1.0]], (-1.0, 2.0)),
        ([[NAN, NAN]], (0.0, 1.0)),  # nothing finite: the default scale
        ([[3.0, 3.0], [NAN, -INF]], (2.5, 3.5)),  # flat: widened by 0.5 each way
        (np.zeros((0, 4)), (0.0, 1.0)),
    ],
)
def test_cell_limits_skip_nonfinite_values(values, want):
    got = auto_limits(np.array(values, np.float32))
    assert got == want and all(type(v) is float for v in got)


def test_cell_limits_are_the_manifest_range_of_the_same_array():
    arr = np.random.default_rng(3).standard_normal((6, 7)).astype(np.float16)
    arr[1, 2], arr[4, 0] = np.nan, -np.inf
    lo, hi, bad = array_stats(arr)
    assert auto_limits(arr) == (lo, hi) and bad == 2


@pytest.mark.parametrize(
    ("mins", "maxs", "want"),
    [
        ([None, 2.0, -4.0], [5.0, None], (-4.0, 5.0)),
        ([None], [None], (0.0, 1.0)),
        ([1.0], [None], (0.0, 1.0)),  # a min without any max: no scale to build on
        ([1.0, 1.0], [1.0], (0.5, 1.5)),
    ],
)
def test_fixed_limits_over_files(mins, maxs, want):
    assert fixed_limits(mins, maxs) == want == color_limits(*merge_ranges(mins, maxs))
