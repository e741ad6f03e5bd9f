"""CRC-32 (zlib's, the store's checksum): ``crc32`` as fast as this machine allows, and
``crc32_combine`` (the CRC of a concatenation from the CRCs of its parts).

``crc32``: Python's zlib computes CRC-32 a byte table at a time (2-4 GB/s per core here), and
a capture checksums every byte it writes while the model waits. The ``zlib-ng`` package (a
dependency: Python bindings of zlib-ng, wheels for the usual platforms) folds the buffer with
carry-less multiplies (PCLMUL/VPCLMUL) where the CPU has them: 12-15 GB/s here. Its ``crc32``
reads the caller's buffer in place (a NumPy array or memoryview is not copied) and releases
the GIL for buffers over 5 KiB, so the store's helper threads checksum in parallel. It is
used only if it gives zlib's CRC on test vectors at first use; otherwise, or where the package
cannot be imported, ``zlib.crc32`` does the work. The value is the same either way.
``PASSAGE_CRC=zlib`` forces zlib; ``backend()`` names the implementation in use.

``crc32_combine``: Python's ``zlib`` does not expose zlib's; this is the same algorithm (zlib
1.2.12's ``multmodp``/``x2nmodp``: polynomial arithmetic modulo the CRC-32 polynomial). It
lets several threads checksum pieces of one file at once. The operator for a given length is
cached: the pieces of a capture have a few sizes that repeat every batch.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

Buffer = np.ndarray | bytes | bytearray | memoryview
CrcFunction = Callable[[Buffer, int], int]  # zlib.crc32's signature: (data, value) -> crc
CHECK = (b"123456789", 0xCBF43926)  # the CRC-32 catalogue's check value


def crc32(data: Buffer, value: int = 0) -> int:
    """``zlib.crc32(data, value)``: ``data`` is a bytes-like object or an array (its bytes in
    C order, whatever its dtype). Contiguous buffers are read in place; a non-contiguous array
    or memoryview is copied once into C order."""
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
    elif isinstance(data, memoryview) and not data.c_contiguous:
        data = np.ascontiguousarray(data)
    return _implementation()[1](data, value & 0xFFFFFFFF)


def backend() -> str:
    """Which implementation ``crc32`` uses, with its version (logged, shown by the bench)."""
    return _implementation()[0]


@lru_cache(maxsize=1)
def _implementation() -> tuple[str, CrcFunction]:
    fallback = f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    if os.environ.get("PASSAGE_CRC", "").lower() == "zlib":
        log.debug("crc32: using zlib (PASSAGE_CRC=zlib)")
        return f"{fallback} (PASSAGE_CRC=zlib)", zlib.crc32
    try:
        import zlib_ng
        from zlib_ng import zlib_ng as ng
    except ImportError:
        log.debug("crc32: using zlib (the zlib-ng package cannot be imported)")
        return f"{fallback} (zlib-ng not installed)", zlib.crc32
    label = f"zlib-ng {ng.ZLIBNG_RUNTIME_VERSION} (python-zlib-ng {zlib_ng.__version__})"
    if not verified(ng.crc32):
        log.warning(
            "crc32: expected %s to give zlib's CRC-32 on test vectors, received other values; "
            "using zlib instead (same checksums, slower). Reinstall zlib-ng to get its speed.",
            label,
        )
        return f"{fallback} ({label} failed verification)", zlib.crc32
    log.debug("crc32: using %s", label)
    return label, ng.crc32


def verified(func: CrcFunction) -> bool:
    """``func`` gives the catalogue's check value and zlib's CRC-32 on test vectors (lengths,
    offsets and start values that exercise vector paths, tails and the GIL-free path)."""
    if func(CHECK[0], 0) != CHECK[1]:
        return False
    data = np.random.default_rng(32).integers(0, 256, 1 << 17, dtype=np.uint8)
    cases = ((0, 0, 0), (0, 1, 0), (3, 1000, 7), (5, 5 * 1024 + 6, 1), (1, 1 << 17, 0xDEADBEEF))
    for start, stop, value in cases:
        piece = data[start:stop]
        if func(piece, value) & 0xFFFFFFFF != zlib.crc32(piece, value):
            return False
    return True


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
