"""Write one data file's bytes and their CRC-32: with direct I/O for large files, through the
page cache otherwise.

A capture writes gigabytes that nobody reads back for a while. Through the page cache every
new page is allocated (and zeroed, and on a virtual machine often faulted in from the host)
and later written back by a kernel thread, all competing with the forward pass for the same
cores; and a long capture fills RAM with cached data, pushing out the user's other work.
Direct I/O (``O_DIRECT``) sends the bytes from one small aligned staging buffer per thread
straight to the disk: the CRC-32 is folded over that buffer while it is in the CPU cache.

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
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ALIGN = 4096  # buffer address, file offset and length multiple for O_DIRECT (any sector size)
CHUNK = 4 << 20  # staging buffer per writing thread
DIRECT_MIN = 1 << 20  # smaller files go through the page cache
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class _Unsupported(Exception):
    """This filesystem refused a direct write (EINVAL): write the file buffered instead."""


def _as_bytes(piece: Any) -> np.ndarray:
    """A flat uint8 view of a bytes object or a C-contiguous array (no copy)."""
    if isinstance(piece, np.ndarray):
        return piece.reshape(-1).view(np.uint8)
    return np.frombuffer(piece, dtype=np.uint8)


class FileWriter:
    """Writes files from pieces (e.g. an NPY header and the array's bytes), returning (size,
    crc32) of what was written. Safe to use from several threads at once (distinct files).

    ``direct``: use direct I/O for files of at least ``DIRECT_MIN`` bytes where the filesystem
    allows it. ``durable``: ``fsync`` each file before returning.
    """

    def __init__(self, direct: bool = True, durable: bool = False) -> None:
        self.direct = bool(direct and O_DIRECT)
        self.durable = durable
        self._local = threading.local()

    def write(self, path: Path, pieces: Sequence[Any]) -> tuple[int, int]:
        views = [_as_bytes(p) for p in pieces]
        size = sum(v.size for v in views)
        if self.direct and size >= DIRECT_MIN:
            try:
                return self._write_direct(path, views)
            except _Unsupported:
                self.direct = False
                log.debug(
                    "%s: the filesystem refuses O_DIRECT; writing through the page cache",
                    path.parent,
                )
        return self._write_buffered(path, views)

    def _write_buffered(self, path: Path, views: Sequence[np.ndarray]) -> tuple[int, int]:
        crc = 0
        size = 0
        with path.open("wb") as fh:
            for v in views:
                fh.write(v)
                crc = zlib.crc32(v, crc)
                size += v.size
            if self.durable:
                fh.flush()
                os.fsync(fh.fileno())
        return size, crc

    def _staging(self) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            raw = np.empty(CHUNK + ALIGN, dtype=np.uint8)
            start = -raw.ctypes.data % ALIGN
            buf = self._local.buf = raw[start : start + CHUNK]
        return buf

    def _write_direct(self, path: Path, views: Sequence[np.ndarray]) -> tuple[int, int]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | O_DIRECT
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise _Unsupported from exc
            raise
        try:
            buf = self._staging()
            crc = size = fill = 0
            for v in views:
                pos = 0
                while pos < v.size:
                    k = min(CHUNK - fill, v.size - pos)
                    np.copyto(buf[fill : fill + k], v[pos : pos + k])  # releases the GIL
                    fill += k
                    pos += k
                    if fill == CHUNK:
                        crc = zlib.crc32(buf, crc)
                        _write_all(fd, buf)
                        size += fill
                        fill = 0
            if fill:
                crc = zlib.crc32(buf[:fill], crc)
                padded = -(-fill // ALIGN) * ALIGN
                buf[fill:padded] = 0
                _write_all(fd, buf[:padded])
                size += fill
                os.ftruncate(fd, size)  # drop the padding of the last block
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return size, crc


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
