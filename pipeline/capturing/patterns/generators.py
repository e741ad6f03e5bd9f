"""Generator patterns: ``module:function`` (module importable or a ``path/to/file.py``)
called with no arguments, returning an iterable of batches, e.g. a ``tf.data.Dataset``.

A batch is an array (one input), a list/tuple with one array per input, a dict {input name:
array}, or an ``(x, y)`` / ``(x, y, weights)`` tuple whose ``x`` is one of those. The iterable
is read once, batch by batch, into a temporary file per input that is then memory-mapped (the
capture loop needs random access to resume), so memory stays bounded by one batch.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import PassageError, PatternError, SpecError
from ..models import load_callable
from .source import PatternSource

log = logging.getLogger(__name__)


def _as_inputs(batch: Any, names: Sequence[str], where: str) -> list[np.ndarray]:
    """One array per input from a generator's batch (see the module docstring)."""
    k = len(names)
    if isinstance(batch, Mapping):
        missing = [n for n in names if n not in batch]
        if missing:
            raise PatternError(
                f"{where}: a dict batch needs one key per model input {list(names)}; "
                f"received keys {list(batch)}"
            )
        return [np.asarray(batch[n]) for n in names]
    if isinstance(batch, (list, tuple)):
        items = list(batch)
        if k > 1 and len(items) == k and not any(isinstance(x, (list, tuple, dict)) for x in items):
            return [np.asarray(x) for x in items]
        if 2 <= len(items) <= 3:  # (x, y) or (x, y, sample_weight)
            return _as_inputs(items[0], names, where)
        if k == 1 and len(items) == 1:
            return [np.asarray(items[0])]
        raise PatternError(
            f"{where}: a batch of {len(items)} items for a model with {k} input(s); expected one "
            "array per input, a dict by input name, or (x, y)"
        )
    if k != 1:
        raise PatternError(
            f"{where}: a single array for a model with {k} inputs {list(names)}; expected one "
            "array per input or a dict by input name"
        )
    return [np.asarray(batch)]


class _Spill:
    """Batches appended to one raw file per input, then memory-mapped: memory stays bounded by
    one batch whatever the generator's length. The files are unlinked once mapped (the mapping
    keeps the data until the source is dropped)."""

    def __init__(self, k: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="passage-patterns-"))
        self.files = [(self.dir / f"input{i}.raw").open("wb") for i in range(k)]
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[np.dtype] = []
        self.count = 0

    def add(self, arrays: Sequence[np.ndarray], where: str, want: Sequence[Any]) -> None:
        for arr in arrays:
            if arr.ndim < 1 or arr.dtype.kind not in "biuf":
                raise PatternError(
                    f"{where}: expected numeric arrays with a batch axis, received dtype "
                    f"{arr.dtype} shape {arr.shape}"
                )
        sizes = {int(a.shape[0]) for a in arrays}
        if len(sizes) != 1:
            raise PatternError(f"{where}: the inputs hold different batch sizes {sorted(sizes)}")
        if not self.shapes:
            self.shapes = [tuple(a.shape[1:]) for a in arrays]
            self.dtypes = [a.dtype for a in arrays]
        got = [tuple(a.shape[1:]) for a in arrays]
        if got != self.shapes:
            raise PatternError(
                f"{where}: batches differ in shape: {got} per pattern after {self.shapes}; "
                f"expected every batch to be (n, *input_shape) with input shapes "
                f"{[tuple(w) for w in want]}"
            )
        for i, (fh, arr, dtype) in enumerate(zip(self.files, arrays, self.dtypes, strict=True)):
            if not np.can_cast(arr.dtype, dtype, casting="same_kind"):  # the caller closes
                raise PatternError(
                    f"{where}: input {i} is {arr.dtype} after batches of {dtype}; expected every "
                    f"batch in one dtype (a {dtype} copy would cut the values)"
                )
            fh.write(np.ascontiguousarray(arr, dtype=dtype).tobytes())
        self.count += sizes.pop()

    def arrays(self) -> list[np.ndarray]:
        for fh in self.files:
            fh.close()
        maps = [
            np.memmap(fh.name, dtype=d, mode="r", shape=(self.count, *shape))
            for fh, d, shape in zip(self.files, self.dtypes, self.shapes, strict=True)
        ]
        self.close()
        return maps

    def close(self) -> None:
        for fh in self.files:
            fh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def from_generator(
    spec: str, shapes: Sequence[tuple[int | None, ...]], names: Sequence[str], limit: int = 0
) -> PatternSource:
    """Read ``module:function``'s iterable of batches once, into one memory-mapped array per
    input (spilled to a temporary file: memory stays bounded by one batch); with ``limit`` > 0,
    stop after that many patterns (an endless dataset such as ``.repeat()`` needs it)."""
    factory = load_callable(spec, "pattern")
    try:
        batches = factory()
    except Exception as exc:
        raise SpecError(
            f"pattern function {spec!r} failed when called with no arguments: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        iterator = iter(batches)
    except TypeError as exc:
        raise SpecError(
            f"pattern spec {spec!r}: expected a function returning an iterable of batches "
            f"(such as a tf.data.Dataset), received {type(batches).__name__}"
        ) from exc
    spill = _Spill(len(names))
    log.info(
        "reading the batches of %s into a temporary file%s",
        spec,
        f" (the first {limit:,} patterns)" if limit else "; an endless dataset needs --limit N",
    )
    try:
        for b, batch in enumerate(iterator):
            where = f"pattern function {spec!r}, batch {b}"
            arrays = _as_inputs(batch, names, where)
            if limit:
                arrays = [a[: limit - spill.count] for a in arrays]
            spill.add(arrays, where, shapes)
            if limit and spill.count >= limit:
                break
        if spill.count == 0:
            raise PatternError(
                f"pattern function {spec!r} yielded no patterns; expected at least one batch"
            )
        arrays = spill.arrays()
    except PassageError:
        spill.close()
        raise
    except Exception as exc:
        spill.close()
        raise SpecError(f"pattern function {spec!r} failed while iterating: {exc}") from exc
    return PatternSource(
        spec,
        spill.count,
        [tuple(a.shape[1:]) for a in arrays],
        arrays=arrays,
        origin=spec,
        kind="generator",
    )
