"""How an RDM is arranged for display (pure numpy/scipy, no matplotlib): ranks in [0, 1],
conditions grouped by label, a classical MDS map, the mean of several reference RDMs and a
block-mean reduction for large N. The compare pictures and the viewer's Compare view share
these, so both show the same matrix."""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh
from scipy.stats import rankdata


def _square(rdm: np.ndarray, what: str = "rdm") -> np.ndarray:
    rdm = np.asarray(rdm, dtype=np.float64)
    if rdm.ndim != 2 or rdm.shape[0] != rdm.shape[1]:
        raise ValueError(f"{what}: expected a square (N, N) matrix, received shape {rdm.shape}")
    return rdm


def rank_transform(rdm: np.ndarray) -> np.ndarray:
    """``rdm`` (N, N, symmetric: its upper triangle is read) with each off-diagonal entry
    replaced by its rank among the finite ones, scaled to [0, 1]: ties get their average
    rank, 0 is the most similar pair and 1 the most dissimilar (when not tied). NaN stays
    NaN, the diagonal is 0; a single finite pair gets 0."""
    rdm = _square(rdm)
    n = rdm.shape[0]
    out = np.zeros((n, n))
    rows, cols = np.triu_indices(n, k=1)
    values = rdm[rows, cols]
    ranked = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    m = int(finite.sum())
    if m:
        r = rankdata(values[finite], method="average")
        ranked[finite] = (r - 1.0) / (m - 1) if m > 1 else 0.0
    out[rows, cols] = ranked
    out[cols, rows] = ranked
    return out


def label_order(labels: np.ndarray | None, n: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A stable order of ``n`` conditions that groups them by label (labels ascending, the
    conditions of one label in their original order), and the groups as (start, stop,
    label) in that order. ``labels`` None: the identity order and no groups."""
    if labels is None:
        return np.arange(n, dtype=np.int64), []
    labels = np.asarray(labels).reshape(-1)
    if labels.size != n:
        raise ValueError(f"labels: expected {n} labels (one per condition), received {labels.size}")
    order = np.argsort(labels, kind="stable").astype(np.int64)
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if n else np.zeros(0, int)
    stops = np.r_[starts[1:], n].astype(int)
    groups = [(int(a), int(b), int(ordered[a])) for a, b in zip(starts, stops, strict=True)]
    return order, groups


def _complete(rdm: np.ndarray) -> np.ndarray:
    """Which conditions to keep so that no entry among them is NaN: drop, one at a time, the
    condition with the most NaN entries among those kept (the lowest index on a tie)."""
    bad = ~np.isfinite(rdm)
    np.fill_diagonal(bad, False)
    keep = np.ones(rdm.shape[0], dtype=bool)
    while True:
        counts = (bad & keep[None, :]).sum(axis=1) * keep
        if not counts.any():
            return keep
        keep[int(np.argmax(counts))] = False


def classical_mds(rdm: np.ndarray, dims: int = 2) -> np.ndarray:
    """Torgerson's classical MDS of ``rdm`` (entries read as distances; its symmetric part):
    (N, dims) coordinates whose Euclidean distances best reproduce it. Conditions dropped to
    leave a NaN-free matrix (``_complete``) get NaN coordinates; dimensions beyond the
    positive eigenvalues are 0. Each axis' sign makes its largest-magnitude coordinate
    positive, so the map does not flip between runs."""
    rdm = _square(rdm)
    if dims < 1:
        raise ValueError(f"dims: expected a positive number of dimensions, received {dims}")
    n = rdm.shape[0]
    out = np.full((n, dims), np.nan)
    keep = _complete(rdm)
    d = rdm[np.ix_(keep, keep)]
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    m = d.shape[0]
    if m == 0:
        return out
    sq = d**2
    centered = sq - sq.mean(axis=0, keepdims=True) - sq.mean(axis=1, keepdims=True) + sq.mean()
    b = -0.5 * centered
    if dims < m:  # only the largest eigenpairs: much faster for thousands of conditions
        values, vectors = eigh(b, subset_by_index=[m - dims, m - 1])
    else:
        values, vectors = eigh(b)
    top = np.argsort(values)[::-1][:dims]
    coords = np.zeros((m, dims))
    k = top.size
    coords[:, :k] = vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))
    for j in range(k):
        big = int(np.argmax(np.abs(coords[:, j])))
        if coords[big, j] < 0:
            coords[:, j] = -coords[:, j]
    out[keep] = coords
    return out


def mean_reference(references: np.ndarray) -> np.ndarray:
    """The mean of (S, N, N) reference RDMs over S, each entry over the RDMs where it is not
    NaN (NaN where it is NaN in all of them)."""
    references = np.asarray(references, dtype=np.float64)
    if references.ndim != 3 or references.shape[1] != references.shape[2]:
        raise ValueError(f"references: expected (S, N, N) RDMs, received shape {references.shape}")
    finite = np.isfinite(references)
    count = finite.sum(axis=0)
    total = np.where(finite, references, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def block_starts(n: int, size: int) -> np.ndarray:
    """Where each of ``min(n, size)`` consecutive blocks of ``n`` conditions starts (blocks of
    floor or ceil of n / size conditions)."""
    m = max(1, min(n, int(size)))
    return (np.arange(m, dtype=np.int64) * n) // m


def downsample(rdm: np.ndarray, size: int) -> np.ndarray:
    """``rdm`` reduced to at most ``size`` x ``size`` by block means (``block_starts``: rows
    and columns cut into consecutive blocks), each block's mean over its non-NaN entries
    (NaN when it has none); returned unchanged (a float64 copy) when N <= size."""
    rdm = _square(rdm)
    if size < 1:
        raise ValueError(f"size: expected at least 1 row and column, received {size}")
    n = rdm.shape[0]
    if n <= size:
        return rdm.copy()
    starts = block_starts(n, size)
    finite = np.isfinite(rdm)
    values = np.where(finite, rdm, 0.0)
    total = np.add.reduceat(np.add.reduceat(values, starts, axis=0), starts, axis=1)
    count = np.add.reduceat(
        np.add.reduceat(finite.astype(np.int64), starts, axis=0), starts, axis=1
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
