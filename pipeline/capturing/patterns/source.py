"""A pattern source: patterns to pass through a model, read batch by batch, and the checks
every source passes (shapes, dtypes, counts)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import PatternError

log = logging.getLogger(__name__)


@dataclass
class PatternSource:
    """Patterns to pass through a model, produced batch by batch.

    ``arrays`` holds one array-like per model input (memory-mapped files stay on disk);
    ``reader(first, size)`` replaces them for lazy sources (image folders, one source per
    input); neither: seeded random patterns. ``kind`` and ``names`` say where each pattern came
    from: ``names[i]`` labels pattern i (image file names); ``None`` means pattern i is row i of
    ``origin``. ``prepare`` turns a batch as read (what is shown and kept with the run: images
    in [0, 1]) into what the model is fed (``--preprocess``); None: fed as read (``feed``).
    """

    spec: str
    count: int
    shapes: list[tuple[int, ...]]
    arrays: list[Any] = field(default_factory=list)
    seed: int | None = None
    origin: str = ""
    kind: str = "rows"
    names: list[str] | None = None
    reader: Callable[[int, int], list[np.ndarray]] | None = None
    prepare: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None

    def feed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """What the model is fed for ``batch`` (one array per input, as ``batch()`` reads)."""
        return batch if self.prepare is None else self.prepare(batch)

    def batch(self, first: int, size: int) -> list[np.ndarray]:
        if self.reader is not None:
            return self.reader(first, size)
        if self.arrays:
            return [np.asarray(a[first : first + size]) for a in self.arrays]
        return [self._random(first, size)]

    def label(self, index: int) -> str:
        """Where pattern ``index`` came from: a file name, or ``origin[row]``."""
        if self.names is not None:
            return self.names[index]
        return f"{self.origin}[{index}]"

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the sources (``sources`` key)."""
        return {"kind": self.kind, "origin": self.origin, "names": self.names}

    def _random(self, first: int, size: int) -> np.ndarray:
        # One float64 per value from PCG64, so skipping ahead is exact: pattern i is the same
        # whatever the batch size or the resume point.
        shape = self.shapes[0]
        per = int(np.prod(shape, dtype=np.int64))
        bitgen = np.random.PCG64(self.seed)
        bitgen.advance(first * per)
        out = np.random.Generator(bitgen).random((size, *shape), dtype=np.float64)
        return out.astype(np.float32)


def check_shapes(
    spec: str, got: Sequence[tuple[int, ...]], want: Sequence[tuple[int | None, ...]]
) -> None:
    for g, w in zip(got, want, strict=True):
        ok = len(g) == len(w) and all(x is None or x == y for x, y in zip(w, g, strict=True))
        if not ok:
            raise PatternError(
                f"patterns {spec!r} have shape {tuple(g)} per pattern but the model input expects "
                f"{tuple(w)}; reshape the patterns or pick another model"
            )


def check_arrays(spec: str, arrays: Sequence[np.ndarray]) -> None:
    for arr in arrays:
        if arr.dtype.kind not in "biuf":
            raise PatternError(
                f"patterns {spec!r} have dtype {arr.dtype}; expected numbers (int, bool, float)"
            )
        if arr.ndim < 1:
            raise PatternError(f"patterns {spec!r} are a scalar; expected (N, *input_shape)")
    counts = {int(a.shape[0]) for a in arrays}
    if len(counts) > 1:
        raise PatternError(
            f"patterns {spec!r}: the inputs hold different pattern counts {sorted(counts)}; "
            "expected the same count for every input"
        )
    for arr in arrays:
        if arr.dtype != np.float32:
            log.info(
                "patterns %s have dtype %s; they are cast to the input dtype batch by batch",
                spec,
                arr.dtype,
            )


def limited(source: PatternSource, limit: int) -> PatternSource:
    """The first ``limit`` patterns of ``source`` (all of them when ``limit`` is 0)."""
    if not limit or source.count <= limit:
        return source
    names = source.names[:limit] if source.names is not None else None
    return dataclasses.replace(source, count=limit, names=names)


def combine(spec: str, parts: Sequence[PatternSource]) -> PatternSource:
    """One source per input (a comma-separated spec) as one source."""
    counts = [p.count for p in parts]
    if len(set(counts)) != 1:
        raise PatternError(
            f"patterns {spec!r}: the per-input sources hold {counts} patterns; expected the "
            "same count for every input"
        )

    def read(first: int, size: int) -> list[np.ndarray]:
        return [x for p in parts for x in p.batch(first, size)]

    def prepare(batch: list[np.ndarray]) -> list[np.ndarray]:
        fed, at = [], 0
        for p in parts:
            fed += p.feed(batch[at : at + len(p.shapes)])
            at += len(p.shapes)
        return fed

    names = None
    if any(p.names is not None for p in parts):
        names = [",".join(p.label(i) for p in parts) for i in range(counts[0])]
    return PatternSource(
        spec,
        counts[0],
        [s for p in parts for s in p.shapes],
        origin=",".join(p.origin for p in parts),
        kind="+".join(p.kind for p in parts),
        names=names,
        reader=read,
        prepare=prepare if any(p.prepare is not None for p in parts) else None,
    )
