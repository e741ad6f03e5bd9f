"""Turn one array into a data file's bytes, CRC-32 and statistics, ready to be written.

An NPY file is prepared in an aligned pool buffer (direct I/O writes it as it is): the header
is placed first, then the body is filled range by range (``Encoded.work``): each range of
elements is converted to the stored dtype straight into the buffer, its min/max/nonfinite
taken and its CRC-32 folded while it is in the CPU cache. Ranges can run on different threads;
``Encoded.finish`` combines their CRCs (``crc32_combine``) and statistics in order. A JSON file
is one orjson text: one unit of work, which ``ranges`` never cuts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import codecs
from .crc import crc32, crc32_combine
from .direct_io import BufferPool
from .stats import Stats, array_stats, merge_stats

SUB = 1 << 18  # elements per step inside a range: a few hundred KiB stay in cache


@dataclass
class _Part:
    crc: int
    nbytes: int
    stats: Stats


@dataclass
class Encoded:
    """One data file being prepared: ``data[:size]`` are its bytes once ``run`` has covered
    its ``work`` elements (NPY; JSON has none left), and ``finish`` gives their CRC-32 and
    statistics."""

    stored: np.ndarray  # the array as stored (shape and dtype of the file)
    data: np.ndarray  # the file's bytes: a pool buffer (NPY) or the JSON text
    size: int
    work: int  # elements to run (NPY), or 1: the whole JSON text
    buffer: np.ndarray | None = None  # give back to the pool once written
    _source: np.ndarray | None = None  # flat source (NPY), any dtype
    _body: np.ndarray | None = None  # flat stored-dtype view of the buffer's body (NPY)
    _head_crc: int = 0
    _parts: dict[int, _Part] = field(default_factory=dict)

    def run(self, start: int, stop: int) -> None:
        """Fill, checksum and measure elements ``[start, stop)`` (NPY). Safe on threads for
        ranges that do not overlap."""
        src, body = self._source, self._body
        if stop <= start:
            return
        if body is None:  # JSON: the whole text at once
            text = codecs.encode_json(self.stored)
            self.data, self.size = np.frombuffer(text, dtype=np.uint8), len(text)
            self._parts[0] = _Part(crc32(text), len(text), array_stats(self.stored))
            return
        assert src is not None
        crc = 0
        parts: list[Stats] = []
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to +-inf is counted
            for a in range(start, stop, SUB):
                b = min(stop, a + SUB)
                np.copyto(body[a:b], src[a:b], casting="unsafe")
                parts.append(array_stats(body[a:b]))
                crc = crc32(body[a:b], crc)
        self._parts[start] = _Part(crc, (stop - start) * body.itemsize, merge_stats(parts))

    def release_source(self) -> None:
        """Drop the reference to the source array once every range has run: a prepared file
        waiting to be written holds only its buffer, not the model's output too."""
        self._source = None

    def finish(self) -> tuple[int, Stats]:
        """(crc32, stats) of the whole file once every range has run."""
        if self._body is None:  # JSON: one part
            part = self._parts[0]
            return part.crc, part.stats
        crc = self._head_crc
        covered = 0
        parts: list[Stats] = []
        for start in sorted(self._parts):
            part = self._parts[start]
            if start != covered:
                raise AssertionError(f"range at {start} but {covered} elements covered")
            crc = crc32_combine(crc, part.crc, part.nbytes)
            covered += part.nbytes // self._body.itemsize
            parts.append(part.stats)
        if covered != self.work:
            raise AssertionError(f"{covered} of {self.work} elements prepared")
        return crc, merge_stats(parts) if parts else (None, None, 0)


def stored_dtype(arr: np.ndarray, dtype: np.dtype) -> np.dtype:
    """Floats are stored as ``dtype``; other kinds as they are."""
    return dtype if arr.dtype.kind == "f" else arr.dtype


def encode(fmt: str, arr: np.ndarray, dtype: np.dtype, pool: BufferPool) -> Encoded:
    """Start preparing ``arr`` as a ``fmt`` file storing floats as ``dtype``."""
    arr = np.asarray(arr)
    target = stored_dtype(arr, dtype)
    if fmt != "npy":
        with np.errstate(over="ignore"):  # overflow becomes +-inf, counted as nonfinite
            stored = arr.astype(target, copy=False)
        return Encoded(stored, np.empty(0, np.uint8), 0, 1)
    head = codecs.npy_header(target, arr.shape)
    nbytes = len(head) + arr.size * target.itemsize
    buf = pool.take(nbytes)
    buf[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    body = buf[len(head) : nbytes].view(target)
    return Encoded(
        body.reshape(arr.shape),
        buf,
        nbytes,
        arr.size,
        buffer=buf,
        _source=np.ascontiguousarray(arr).reshape(-1),
        _body=body,
        _head_crc=crc32(head),
    )


def ranges(jobs: Sequence[Encoded], step: int = SUB) -> list[tuple[Encoded, int, int]]:
    """The work of ``jobs`` as ``(job, start, stop)`` ranges of at most ``step`` elements, in
    file order, for threads to take one at a time. A JSON text (one unit) is never cut.

    Small ranges balance the threads (capture / bare pass on the CNN, side by side twice:
    256 Ki elements 0.66 and 0.63, 1 Mi 0.61 and 0.61, 128 Ki 0.60, 4 Mi 0.61)."""
    out: list[tuple[Encoded, int, int]] = []
    for job in jobs:
        out += [(job, a, min(job.work, a + step)) for a in range(0, job.work, step)]
    return out
