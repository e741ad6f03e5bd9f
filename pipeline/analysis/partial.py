"""The one vocabulary of analyze's mergeable partial results (pure).

A *partial result* summarizes the patterns it was given in a small state, so that the same code
runs in one process, over a process pool, or as Dask tasks (whose names for the three steps are
chunk, combine and aggregate):

- ``add(chunk)``: take one more chunk of patterns (chunk);
- ``merge(other)``: take another partial result of the same kind over other patterns (combine);
- ``state()`` / ``cls.from_state(state)``: plain arrays, safe for ``np.savez``, and back; a
  saved state resumes or merges like the object it came from;
- ``result()``: the answer over every pattern added or merged so far (aggregate).

The partial results: ``reductions.LayerReduction`` (one layer's statistics; chunks are
``Chunk``), ``topk.TopK`` (the K patterns driving each channel hardest; chunks are ``Chunk`` of
channel activations), ``cka.ExactCka`` and ``cka.MinibatchCka`` (CKA between views; a chunk is
one block of patterns per view). Merging is exact where the maths is: counts, sums, extremes,
histogram counts and top K do not depend on how the patterns were cut; floating-point sums
(moments, cross-products) agree across cuts to their rounding, which each class states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # typing.Self is Python 3.11's; the package runs on 3.10
    from typing import Self

ChunkT = TypeVar("ChunkT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)


@runtime_checkable
class Partial(Protocol[ChunkT, ResultT]):
    """A mergeable partial result (see the module docstring)."""

    def add(self, chunk: ChunkT) -> None: ...

    def merge(self, other: Self) -> None: ...

    def state(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> Self: ...

    def result(self) -> ResultT: ...


@dataclass(frozen=True)
class Chunk:
    """Consecutive patterns ``first .. first + len(values) - 1``: ``values`` shaped
    (n, *shape), one row per pattern; ``labels``, one class value per pattern (or None);
    ``clean``: the values are known to be finite (their manifest line says so)."""

    values: np.ndarray
    first: int = 0
    labels: np.ndarray | None = None
    clean: bool = False
