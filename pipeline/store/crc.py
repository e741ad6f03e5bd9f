"""CRC-32 (zlib's) of a concatenation from the CRCs of its parts: ``crc32_combine``.

Python's ``zlib`` does not expose zlib's ``crc32_combine``; this is the same algorithm
(zlib 1.2.12's ``multmodp``/``x2nmodp``: polynomial arithmetic modulo the CRC-32 polynomial).
It lets several threads checksum pieces of one file at once. The operator for a given length
is cached: the pieces of a capture have a few sizes that repeat every batch.
"""

from __future__ import annotations

from functools import lru_cache

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
