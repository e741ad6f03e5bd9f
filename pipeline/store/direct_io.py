"""Write one data file's prepared bytes: with direct I/O for large files, through the page
cache otherwise; and the aligned buffers they are prepared in (``BufferPool``).

A capture writes gigabytes that nobody reads back for a while. Through the page cache every
new page is allocated (and zeroed, and on a virtual machine often faulted in from the host)
and later written back by a kernel thread, all competing with the forward pass for the same
cores; and a long capture fills RAM with cached data, pushing out the user's other work.
Direct I/O (``O_DIRECT``) sends the bytes from the prepared buffer straight to the disk.

Files smaller than ``DIRECT_MIN`` (training snapshots, small layers) go through the page cache,
where a write costs no disk round trip. Filesystems that refuse ``O_DIRECT`` (tmpfs on older
kernels, some network and FUSE filesystems) and systems without it fall back to buffered
writes, once, with a debug line.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ALIGN = 4096  # buffer address, file offset and length multiple for O_DIRECT (any sector size)
DIRECT_MIN = 1 << 20  # smaller files go through the page cache
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialized uint8 array of ``nbytes`` (rounded up to ``ALIGN``) whose address is a
    multiple of ``ALIGN``, as direct I/O needs."""
    size = -(-max(nbytes, 1) // ALIGN) * ALIGN
    raw = np.empty(size + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size]


class BufferPool:
    """Aligned buffers reused from file to file, at most ``budget`` bytes of them in use.

    ``take`` blocks while taking would pass the budget and some buffer is still in use (being
    written), which bounds the memory of prepared files; a file larger than the budget gets a
    buffer of its own once nothing else is in use. Reuse matters beyond allocation time: fresh
    pages are zeroed by the kernel (and on a virtual machine often faulted in from the host).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._free: list[np.ndarray] = []
        self._in_use = 0
        self._held = 0  # bytes of all buffers, free or in use
        self._cond = threading.Condition()

    def take(self, nbytes: int) -> np.ndarray:
        need = -(-max(nbytes, 1) // ALIGN) * ALIGN
        with self._cond:
            while self._in_use and self._in_use + need > self.budget:
                self._cond.wait()
            fits = [i for i, b in enumerate(self._free) if b.size >= need]
            if fits:
                buf = self._free.pop(min(fits, key=lambda i: self._free[i].size))
            else:
                while self._free and self._held + need > self.budget:
                    self._held -= self._free.pop().size  # make room: drop unused buffers
                buf = aligned_empty(need)
                self._held += buf.size
            self._in_use += buf.size
            return buf

    def give(self, buf: np.ndarray) -> None:
        with self._cond:
            self._in_use -= buf.size
            self._free.append(buf)
            self._cond.notify_all()


class _Unsupported(Exception):
    """This filesystem refused a direct write (EINVAL): write the file buffered instead."""


class FileWriter:
    """Writes prepared files. Safe to use from several threads at once (distinct files).

    ``direct``: use direct I/O for files of at least ``DIRECT_MIN`` bytes where the filesystem
    allows it. ``durable``: ``fsync`` each file before returning.
    """

    def __init__(self, direct: bool = True, durable: bool = False) -> None:
        self.direct = bool(direct and O_DIRECT)
        self.durable = durable

    def write_prepared(self, path: Path, data: np.ndarray, size: int) -> None:
        """Write ``data[:size]`` (bytes whose CRC is known already). Direct I/O when ``data``
        is an aligned buffer (``aligned_empty``) of at least ``DIRECT_MIN`` bytes."""
        if self.direct and size >= DIRECT_MIN and data.ctypes.data % ALIGN == 0:
            padded = -(-size // ALIGN) * ALIGN
            if data.size >= padded:
                try:
                    self._write_direct_block(path, data, size, padded)
                    return
                except _Unsupported:
                    self.direct = False
                    log.debug(
                        "%s: the filesystem refuses O_DIRECT; writing through the page cache",
                        path.parent,
                    )
        with path.open("wb") as fh:
            fh.write(data[:size])
            if self.durable:
                fh.flush()
                os.fsync(fh.fileno())

    def _write_direct_block(self, path: Path, data: np.ndarray, size: int, padded: int) -> None:
        fd = self._open_direct(path)
        try:
            data[size:padded] = 0  # the last block's padding, cut off again by ftruncate
            _write_all(fd, data[:padded])
            if padded != size:
                os.ftruncate(fd, size)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _open_direct(path: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | O_DIRECT
        try:
            return os.open(path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise _Unsupported from exc
            raise


def _write_all(fd: int, block: np.ndarray) -> None:
    """Write all of ``block``; a short write (a size limit, a full disk, Linux's 2 GiB cap per
    call) is followed by another, which writes the rest or raises the real error."""
    view = memoryview(block)
    while view.nbytes:
        try:
            written = os.write(fd, view)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # O_DIRECT refused, or a short write left it unaligned
                raise _Unsupported from exc
            raise
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]
