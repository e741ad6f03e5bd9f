"""crc32_combine gives zlib.crc32 of the concatenation, for any split and any lengths."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from pipeline.store.crc import crc32_combine


@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_combine_equals_crc_of_the_concatenation(a: bytes, b: bytes, start: int) -> None:
    crc_a = zlib.crc32(a, start)
    assert crc32_combine(crc_a, zlib.crc32(b), len(b)) == zlib.crc32(a + b, start)


def test_combine_long_pieces_and_many_parts() -> None:
    data = bytes(range(256)) * 40_000 + b"tail"  # 10 MB, odd length
    cuts = [0, 1, 4096, 3_000_001, 7_777_777, len(data)]
    crc = 0
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        crc = crc32_combine(crc, zlib.crc32(data[lo:hi]), hi - lo)
    assert crc == zlib.crc32(data)
