"""One pattern's slices of every input and layer of a run, in one answer (``/api/run/N/pattern``).

The pattern view draws a cell per stored input and per layer; asking for them one request
each costs a browser round trip apiece (Chromium's network stack, not the server, is most of a
switch's time: see docs/viewer.md). This answer carries them all:

    uint32 little-endian  n, the byte length of the JSON head (a multiple of 4)
    n bytes               the head, UTF-8 JSON padded with spaces:
                          {"parts": [PART, ...]} in the page's order (inputs, then layers)
    the values            each part's float32 (little-endian) values, at its "offset"

PART is ``{"kind": "input" | "layer", "name", "shape", "min", "max", "layerMin", "layerMax",
"offset", "count"}`` (the numbers and meaning of ``/api/run/N/data``'s headers; NaN is
``null``), or ``{"kind", "name", "damaged": reason}`` where ``/data`` answers 422, or
``{"kind", "name", "error": message}`` where it answers 404. Asked with ``layouts=1``, a part
with values also carries ``"layout"``: ``/api/layout``'s answer for its shape (the first view
then waits for one answer, not one per shape). The values are the stored float32
exactly as ``/data`` sends them: the page colours and reads them the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from ..errors import DamagedDataError, NotInRunError, StoreError
from .live import LiveRuns, RunState

HEAD_ALIGN = 4  # the values start on a float32 boundary (Float32Array needs it)


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """The finite (min, max) of ``values``; NaN when it holds no finite value."""
    if values.size == 0:
        return float("nan"), float("nan")
    with np.errstate(invalid="ignore"):
        lo, hi = float(np.min(values)), float(np.max(values))
    if np.isfinite(lo) and np.isfinite(hi):
        return lo, hi
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.min()), float(finite.max())


def row_of(arr: np.ndarray, index: int) -> np.ndarray:
    """``arr[index]``; of a memory-mapped NPY file, read with one ``pread`` of its bytes.

    The same bytes as the mapping's: but a read releases the GIL while the disk answers, where
    a page fault in numpy's copy keeps it, so the slices of several layers are read together
    (``pattern_bundle``) and a file not in the page cache costs one read, not a fault per page.
    """
    row = arr[index]
    filename = getattr(arr, "filename", None)
    if not (isinstance(arr, np.memmap) and filename and arr.flags.c_contiguous):
        return row
    size = int(np.asarray(row).nbytes)
    start = int(arr.offset) + index * size
    try:
        fd = os.open(filename, os.O_RDONLY)
        try:
            data = os.pread(fd, size, start)
        finally:
            os.close(fd)
    except OSError:
        return row  # the mapping still reads it (or raises what it would have)
    if len(data) != size:
        return row
    return np.frombuffer(data, dtype=arr.dtype).reshape(np.shape(row))


def read_slice(
    runs: LiveRuns, state: RunState, key: str, pattern: int, epoch: int | None
) -> tuple[np.ndarray, dict[str, float]]:
    """One pattern's values of layer (or input key) ``key`` as contiguous little-endian
    float32 (a scalar keeps its rank-0 shape), and its ``min``/``max`` (finite, of these
    values) and ``layerMin``/``layerMax`` (the manifest's, of the whole layer)."""
    entry = state.run.entry_for(key, pattern, epoch)
    arr = runs.load(state, entry)
    one = row_of(arr, pattern - entry.first)
    # ascontiguousarray makes a scalar (rank 0) a (1,) vector: its shape is kept
    values = np.ascontiguousarray(one, dtype="<f4").reshape(np.shape(one))
    lo, hi = finite_range(values)
    layer_lo, layer_hi = state.layer_range(key, epoch)
    return values, {"min": lo, "max": hi, "layerMin": layer_lo, "layerMax": layer_hi}


def pattern_bundle(
    runs: LiveRuns,
    state: RunState,
    pattern: int,
    epoch: int | None,
    layout: Callable[[tuple[int, ...]], bytes] | None = None,
) -> tuple[bytes, int]:
    """The body of ``/api/run/N/pattern`` for ``pattern`` at ``epoch`` (inputs at none), and
    how many parts it holds. ``pattern`` and ``epoch`` are already checked against the run.
    ``layout``: the JSON of a shape's layout, to send with each part (None: none sent)."""
    run = state.run
    wanted = [("input", name, run.input(name).key, None) for name in run.inputs]
    wanted += [("layer", name, name, epoch) for name in run.layers]
    parts: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for kind, name, key, at in wanted:
        part: dict[str, Any] = {"kind": kind, "name": name}
        try:
            values, ranges = read_slice(runs, state, key, pattern, at)
        except DamagedDataError as exc:
            part["damaged"] = exc.reason
        except NotInRunError as exc:
            part["error"] = " ".join(str(exc).split())
        except StoreError as exc:
            part["damaged"] = " ".join(str(exc).split())
        else:
            data = values.tobytes()
            part.update(shape=list(values.shape), offset=offset, count=int(values.size))
            part.update(ranges)
            if layout is not None:
                part["layout"] = orjson.Fragment(layout(values.shape))
            chunks.append(data)
            offset += len(data)
        parts.append(part)
    head = orjson.dumps({"parts": parts})
    head += b" " * (-len(head) % HEAD_ALIGN)
    return b"".join([len(head).to_bytes(4, "little"), head, *chunks]), len(parts)
