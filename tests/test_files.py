"""FileWriter: direct and buffered writes give the same bytes and the same CRC-32 as zlib over
the file, at every size around the alignment and staging-buffer boundaries; a filesystem
that refuses a direct write falls back to the page cache; a direct file is readable by NPY."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.store import codecs
from pipeline.store.files import ALIGN, CHUNK, DIRECT_MIN, O_DIRECT, FileWriter

pytestmark = pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this system")

SIZES = [
    DIRECT_MIN,
    DIRECT_MIN + 1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK + ALIGN,
    2 * CHUNK + ALIGN - 7,
]


def _pieces(size: int, seed: int) -> list[object]:
    """A 128-byte header and an array body, like an NPY file, ``size`` bytes in all."""
    rng = np.random.default_rng(seed)
    return [rng.bytes(128), rng.integers(0, 256, size - 128, dtype=np.uint8)]


@pytest.mark.parametrize("size", SIZES)
def test_direct_and_buffered_write_the_same_file(tmp_path: Path, size: int) -> None:
    pieces = _pieces(size, size)
    expected = b"".join(bytes(memoryview(p)) for p in pieces)
    direct = FileWriter(direct=True)
    for writer, name in ((direct, "direct"), (FileWriter(direct=False), "buffered")):
        path = tmp_path / name
        written, crc = writer.write(path, pieces)
        data = path.read_bytes()
        assert data == expected
        assert written == size == len(data)
        assert crc == zlib.crc32(data)
    assert direct.direct  # this filesystem took the direct writes


def test_direct_write_of_an_npy_file_loads_back(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).random((300, 26, 26, 8), dtype=np.float32)
    path = tmp_path / "a.npy"
    size, crc = FileWriter(durable=True).write(path, codecs.encode_npy(arr))
    assert size == path.stat().st_size > DIRECT_MIN
    assert crc == codecs.file_checksum(path)[1]
    np.testing.assert_array_equal(np.load(path), arr)


class _Misaligned(FileWriter):
    """A staging buffer one byte off the alignment: the kernel refuses the direct write with
    EINVAL, as filesystems without O_DIRECT do (this machine has none to test on)."""

    def _staging(self) -> np.ndarray:
        raw = np.empty(CHUNK + 2 * ALIGN, dtype=np.uint8)
        start = -raw.ctypes.data % ALIGN + 1
        return raw[start : start + CHUNK]


def test_refused_direct_write_falls_back_to_the_page_cache(tmp_path: Path) -> None:
    writer = _Misaligned(direct=True)
    pieces = _pieces(CHUNK + 5, 1)
    size, crc = writer.write(tmp_path / "f", pieces)
    data = (tmp_path / "f").read_bytes()
    assert size == len(data) == CHUNK + 5
    assert crc == zlib.crc32(data)
    assert data == b"".join(bytes(memoryview(p)) for p in pieces)
    assert not writer.direct  # later files go straight to the page cache
    size, _ = writer.write(tmp_path / "g", pieces)
    assert (tmp_path / "g").read_bytes() == data


def test_small_files_and_empty_files(tmp_path: Path) -> None:
    writer = FileWriter(direct=True)
    for size in (0, 1, 128, ALIGN + 1):
        pieces = [b"", np.zeros(size, np.uint8)]
        written, crc = writer.write(tmp_path / f"s{size}", pieces)
        assert written == size == (tmp_path / f"s{size}").stat().st_size
        assert crc == zlib.crc32(bytes(size))
