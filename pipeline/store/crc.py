"""CRC-32 (zlib's, the store's checksum): ``crc32`` as fast as this machine allows, and
``crc32_combine`` (the CRC of a concatenation from the CRCs of its parts).

``crc32``: zlib 1.2's CRC-32 runs at ~7 GB/s per core, and a capture checksums every byte it
writes while the model waits. Where a library with a carry-less-multiply (PCLMUL) CRC-32 of
the same polynomial is already on the machine, ``crc32`` calls it through ``ctypes`` (2-3x
faster): libdeflate, or liblzma >= 5.6 (system-wide, or the copy Pillow's wheels bundle;
Pillow comes with matplotlib). A candidate is used only if it gives zlib's CRC on test
vectors; otherwise, and for small buffers, ``zlib.crc32`` does the work. The value is the same
either way. ``PASSAGE_CRC=zlib`` forces zlib.

``crc32_combine``: Python's ``zlib`` does not expose zlib's; this is the same algorithm (zlib
1.2.12's ``multmodp``/``x2nmodp``: polynomial arithmetic modulo the CRC-32 polynomial). It
lets several threads checksum pieces of one file at once. The operator for a given length is
cached: the pieces of a capture have a few sizes that repeat every batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import os
import zlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FAST_MIN = 1 << 16  # smaller buffers: zlib (a ctypes call costs about a microsecond)
_Native = Callable[[int, int, int], int]  # (address, length, crc) -> crc


def crc32(data: np.ndarray | bytes | bytearray | memoryview, value: int = 0) -> int:
    """``zlib.crc32(data, value)``: ``data`` is a bytes-like object or a C-contiguous array
    (its bytes, whatever its dtype)."""
    arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if not arr.flags.c_contiguous:
        raise ValueError("crc32: expected a C-contiguous array")
    native = _native()
    if native is not None and arr.nbytes >= FAST_MIN:
        return native(arr.ctypes.data, arr.nbytes, value & 0xFFFFFFFF)
    return zlib.crc32(arr.reshape(-1).view(np.uint8), value)


def backend() -> str:
    """Which implementation ``crc32`` uses for large buffers (logged, shown by the bench)."""
    native = _native()
    return getattr(native, "label", "zlib") if native is not None else "zlib"


@lru_cache(maxsize=1)
def _native() -> _Native | None:
    if os.environ.get("PASSAGE_CRC", "").lower() == "zlib":
        return None
    for label, make in _candidates():
        try:
            func = make()
        except (OSError, AttributeError):
            continue
        if func is not None and verified(func):
            func.label = label  # type: ignore[attr-defined]
            log.debug("crc32: using %s", label)
            return func
    log.debug("crc32: using zlib (no faster CRC-32 library found)")
    return None


def verified(func: _Native) -> bool:
    """``func`` gives zlib's CRC-32 on test vectors (lengths, offsets and start values that
    exercise its vector and tail paths)."""
    data = np.random.default_rng(32).integers(0, 256, 1 << 17, dtype=np.uint8)
    for start, stop, value in ((0, 0, 0), (0, 1, 0), (3, 1000, 7), (1, 1 << 17, 0xDEADBEEF)):
        piece = data[start:stop]
        want = zlib.crc32(piece, value)
        if func(piece.ctypes.data, piece.nbytes, value) & 0xFFFFFFFF != want:
            return False
    return True


def _candidates() -> Iterator[tuple[str, Callable[[], _Native | None]]]:
    name = ctypes.util.find_library("deflate")
    if name:
        yield f"libdeflate ({name})", lambda: _libdeflate(name)
    for path in _lzma_paths():
        yield f"liblzma ({path})", lambda path=path: _liblzma(path)


def _lzma_paths() -> Iterator[str]:
    spec = importlib.util.find_spec("PIL")  # finds Pillow without importing it
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).resolve().parent.parent / "pillow.libs"
        yield from (str(p) for p in sorted(bundled.glob("liblzma*.so*")))
    name = ctypes.util.find_library("lzma")
    if name:
        yield name


def _libdeflate(name: str) -> _Native:
    fn = ctypes.CDLL(name).libdeflate_crc32  # (crc, buffer, length); releases the GIL
    fn.restype = ctypes.c_uint32
    fn.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
    return lambda address, length, crc: fn(crc, address, length)


def _liblzma(path: str) -> _Native | None:
    lib = ctypes.CDLL(path)
    lib.lzma_version_number.restype = ctypes.c_uint32
    if lib.lzma_version_number() < 50060000:  # CLMUL CRC-32 came with 5.6; older: slower
        return None
    fn = lib.lzma_crc32  # (buffer, length, crc); releases the GIL
    fn.restype = ctypes.c_uint32
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32]
    return lambda address, length, crc: fn(address, length, crc)


_POLY = 0xEDB88320  # CRC-32, bits reflected


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC-32 polynomial (reflected: bit 31 is x^0)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> list[int]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multmodp(table[-1], table[-1]))  # x^(2^n)
    return table


_X2N = _x2n_table()


@lru_cache(maxsize=256)
def _shift(nbytes: int) -> int:
    """x^(8 * nbytes) modulo the polynomial: appending ``nbytes`` zero bytes."""
    p = 1 << 31  # x^0
    k = 3  # 2^3 bits per byte
    n = nbytes
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and ``len2 = len(B)``."""
    if len2 <= 0:
        return crc1 & 0xFFFFFFFF
    return (_multmodp(_shift(len2), crc1 & 0xFFFFFFFF) ^ crc2) & 0xFFFFFFFF
