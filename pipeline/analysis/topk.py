"""Top K patterns per channel, a mergeable partial result (pure numpy; see ``partial.py``).

``TopK`` keeps ``values`` and ``indices`` arrays of shape (C, K), highest value first, ties to
the lower pattern index; an empty slot is value ``-inf`` and index -1 (fewer than K patterns
seen). Adding a chunk of channel activations or merging another ``TopK`` gives the top K of
the union: exactly, whatever the order in which chunks arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .partial import Chunk

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


@dataclass
class TopK:
    """The K patterns with the highest activation of each channel (see the module docstring)."""

    values: np.ndarray  # (C, K) float64
    indices: np.ndarray  # (C, K) int64, -1 for an empty slot

    @classmethod
    def empty(cls, channels: int, k: int) -> TopK:
        """No pattern seen yet: every slot empty."""
        return cls(*empty(channels, k))

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    def add(self, chunk: Chunk) -> None:
        """Take a chunk's channel activations, ``chunk.values`` shaped (n, C), of patterns
        ``chunk.first .. chunk.first + n - 1``."""
        activations = np.asarray(chunk.values)
        n, channels = activations.shape
        idx = np.broadcast_to(
            np.arange(chunk.first, chunk.first + n, dtype=np.int64), (channels, n)
        )
        self.values, self.indices = best(
            np.concatenate([self.values, activations.T], axis=1),
            np.concatenate([self.indices, idx], axis=1),
            self.k,
        )

    def merge(self, other: TopK) -> None:
        """Take another top K over disjoint patterns."""
        self.values, self.indices = best(
            np.concatenate([self.values, other.values], axis=1),
            np.concatenate([self.indices, other.indices], axis=1),
            self.k,
        )

    def state(self) -> dict[str, np.ndarray]:
        return {"top_value": self.values.copy(), "top_index": self.indices.copy()}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> TopK:
        return cls(np.array(state["top_value"], np.float64), np.array(state["top_index"], np.int64))

    def result(self) -> dict[str, np.ndarray]:
        """``top_index`` (-1 for an empty slot) and ``top_value`` (NaN for an empty slot)."""
        return {
            "top_index": self.indices.copy(),
            "top_value": np.where(self.indices >= 0, self.values, np.nan),
        }
