"""crc32 gives zlib.crc32 whatever backend computes it; crc32_combine gives zlib.crc32 of the
concatenation, for any split and any lengths."""

from __future__ import annotations

import ctypes
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.store.crc import _native, backend, crc32, crc32_combine, verified


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


@given(
    st.integers(0, 300_000),
    st.integers(0, 64),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["uint8", "float32", "int64"]),
)
@settings(max_examples=60, deadline=None)
def test_crc32_equals_zlib_at_any_size_offset_and_start(
    size: int, offset: int, start: int, dtype: str
) -> None:
    """Whatever backend this machine has (a PCLMUL library or zlib), large buffers included."""
    raw = np.random.default_rng(size).integers(0, 256, size + offset + 8, dtype=np.uint8)
    item = np.dtype(dtype).itemsize
    arr = raw[offset : offset + size // item * item].view(dtype)  # unaligned views too
    want = zlib.crc32(arr.tobytes(), start)
    assert crc32(arr, start) == want
    assert crc32(arr.tobytes(), start) == want


def test_a_backend_is_used_only_if_it_gives_zlibs_crc() -> None:
    def wrong(address: int, length: int, value: int) -> int:
        return zlib.crc32(ctypes.string_at(address, length), value) ^ 1

    def right(address: int, length: int, value: int) -> int:
        return zlib.crc32(ctypes.string_at(address, length), value)

    assert not verified(wrong)
    assert verified(right)


def test_passage_crc_zlib_forces_zlib(monkeypatch) -> None:
    monkeypatch.setenv("PASSAGE_CRC", "zlib")
    _native.cache_clear()
    try:
        assert backend() == "zlib"
        data = np.arange(1 << 18, dtype=np.float32)
        assert crc32(data) == zlib.crc32(data.tobytes())
    finally:
        monkeypatch.delenv("PASSAGE_CRC")
        _native.cache_clear()
