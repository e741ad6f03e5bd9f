"""The compiled (Numba) pass of a clean chunk: every per-value statistic in one read of the data.

Imported only by ``kernel.load`` (importing Numba costs about 0.4 s): never at ``import
pipeline``. Compiled on first use and cached beside this module (``cache=True``), so a later
process loads the machine code instead of compiling it.

For each row (one pattern, ``f`` float32 values, in the L1 cache) three short loops: the shifted
float32 sums, squares, extremes and positive counts (vectorized); each value's float32 bin
``trunc((x - lo) * scale)``, exactly as ``histogram.Binner.index`` computes it, counted in four
interleaved tables; the per-channel float32 sums. A block of ``rows`` patterns keeps its float32
sums, added to the float64 totals at the block's end, as ``LayerReduction``'s numpy loop does.
"""

from __future__ import annotations

import numba as nb
import numpy as np

BINS = 64


@nb.njit(cache=True, nogil=True)
def clean_pass(flat, shift, lo, scale, chans, rows, s1, s2, mn, mx, pos, hist, act):  # noqa: PLR0913
    """Accumulate ``flat`` (n, f) float32 into ``s1``/``s2`` (float64, f), ``mn``/``mx``
    (float32, f), ``pos`` (int64, f) and ``hist`` (int64, BINS + 1: the counts of each bin
    index ``trunc((x - lo) * scale)`` clamped to 0..BINS, index BINS not yet folded), and
    write ``act`` (n, chans) float32 channel sums. The bins are right only when every value
    lies in [lo, hi]: the caller checks that on the extremes (the bin is monotone in the
    value)."""
    n, f = flat.shape
    per = f // chans
    side = BINS + 1
    b1 = np.empty(f, np.float32)
    b2 = np.empty(f, np.float32)
    bp = np.empty(f, np.int32)
    idx = np.empty(f, np.int32)
    pairs = np.zeros((2, side * side), np.int32)  # two values' bins at once: half the counts
    acc = np.empty(chans, np.float32)
    zero = np.float32(0.0)
    quad = f - f % 4
    for a in range(0, n, rows):
        b1[:] = 0.0
        b2[:] = 0.0
        bp[:] = 0
        for i in range(a, min(n, a + rows)):
            row = flat[i]
            for j in range(f):  # vectorized: no loop-carried dependence
                x = row[j]
                d = x - shift[j]
                b1[j] += d
                b2[j] += d * d
                mn[j] = min(mn[j], x)
                mx[j] = max(mx[j], x)
                bp[j] += np.int32(x > zero)
            for j in range(f):  # float32 as Binner.index; clamped so any index is in bounds
                k = np.int32((row[j] - lo) * scale)
                k = k if k > 0 else 0
                idx[j] = k if k < BINS else BINS
            for j in range(0, quad, 4):  # two tables: fewer stalls on a repeated pair
                pairs[0, idx[j] * side + idx[j + 1]] += 1
                pairs[1, idx[j + 2] * side + idx[j + 3]] += 1
            for j in range(quad, f):
                hist[idx[j]] += 1
            acc[:] = 0.0
            for p in range(per):
                base = p * chans
                for c in range(chans):
                    acc[c] += row[base + c]
            act[i, :] = acc
        for j in range(f):
            s1[j] += b1[j]
            s2[j] += b2[j]
            pos[j] += bp[j]
        for u in range(side):  # a block holds < 2**31 values: its int32 pair counts fold here
            for v in range(side):
                both = pairs[0, u * side + v] + pairs[1, u * side + v]
                hist[u] += both
                hist[v] += both
        pairs[:] = 0
