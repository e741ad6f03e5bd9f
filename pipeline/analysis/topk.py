"""Top K patterns per channel, merged chunk by chunk (pure numpy).

Kept as ``(values, indices)`` arrays of shape (C, K), highest value first, ties to the lower
pattern index; an empty slot is value ``-inf`` and index -1 (fewer than K patterns seen).
Merging two such results, or a result and a chunk, gives the top K of the union: the order
in which chunks arrive does not matter.
"""

from __future__ import annotations

import numpy as np

EMPTY = -1


def empty(channels: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((channels, k), -np.inf), np.full((channels, k), EMPTY, np.int64)


def best(values: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The K best of candidate ``values`` (C, M) with pattern ``indices`` (C, M): highest value
    first, ties to the lower index, NaN never chosen; padded with empty slots."""
    values = np.where(np.isnan(values), -np.inf, values)
    channels, m = values.shape
    if m > 2 * k:  # keep every candidate at least as high as the K-th highest value
        kth = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
        keep = values >= kth
        if keep.sum(axis=1).max() < m:
            width = int(keep.sum(axis=1).max())
            order = np.argpartition(~keep, width - 1, axis=1)[:, :width]
            values = np.take_along_axis(values, order, axis=1)
            indices = np.take_along_axis(indices, order, axis=1)
            shown = np.take_along_axis(keep, order, axis=1)
            values = np.where(shown, values, -np.inf)
            indices = np.where(shown, indices, EMPTY)
    # empty slots (-inf, index -1) sort last: by value, then by index with -1 read as "largest"
    rank_index = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    order = np.lexsort((rank_index, -values), axis=1)[:, :k]
    top_v = np.take_along_axis(values, order, axis=1)
    top_i = np.take_along_axis(indices, order, axis=1)
    top_i = np.where(np.isneginf(top_v), EMPTY, top_i)
    if top_v.shape[1] < k:
        pad_v, pad_i = empty(channels, k - top_v.shape[1])
        top_v = np.concatenate([top_v, pad_v], axis=1)
        top_i = np.concatenate([top_i, pad_i], axis=1)
    return top_v, top_i


def add_chunk(
    top: tuple[np.ndarray, np.ndarray], activations: np.ndarray, first: int
) -> tuple[np.ndarray, np.ndarray]:
    """``top`` updated with a chunk's channel activations (n, C) of patterns first..first+n."""
    values, indices = top
    n, channels = activations.shape
    idx = np.broadcast_to(np.arange(first, first + n, dtype=np.int64), (channels, n))
    return best(
        np.concatenate([values, activations.T], axis=1),
        np.concatenate([indices, idx], axis=1),
        values.shape[1],
    )


def merge(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The top K of two results over disjoint patterns."""
    return best(
        np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1), a[0].shape[1]
    )
