"""crc32 gives zlib.crc32 (and the catalogue's check value) through zlib-ng, the dependency, and
through the zlib fallback; crc32_combine gives zlib.crc32 of the concatenation, for any split
and any lengths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.store import crc as crc_module
from pipeline.store.crc import CHECK, backend, crc32, crc32_combine, verified

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ["zlib-ng", "zlib"]


@contextmanager
def using(name: str) -> Iterator[None]:
    """Run the body with ``crc32`` on ``name``: zlib-ng (the default, which must be installed
    and pass its verification) or zlib (forced by PASSAGE_CRC=zlib)."""
    saved = os.environ.pop("PASSAGE_CRC", None)
    if name == "zlib":
        os.environ["PASSAGE_CRC"] = "zlib"
    crc_module._implementation.cache_clear()
    try:
        assert backend().startswith(f"{name} "), backend()
        yield
    finally:
        os.environ.pop("PASSAGE_CRC", None)
        if saved is not None:
            os.environ["PASSAGE_CRC"] = saved
        crc_module._implementation.cache_clear()


def test_the_dependency_is_used_by_default() -> None:
    """zlib-ng is declared in pyproject.toml: a test run without it, or with a zlib-ng that
    fails verification, would only be testing zlib against zlib."""
    with using("zlib-ng"):
        assert "python-zlib-ng" in backend()


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_check_value(name: str) -> None:
    with using(name):
        data, want = CHECK
        assert want == 0xCBF43926
        assert crc32(data) == want
        assert crc32(np.frombuffer(data, np.uint8)) == want
        assert crc32(memoryview(data)) == want
        assert crc32(bytearray(data)) == want
        assert crc32(b"") == 0


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_every_small_size_at_every_alignment(name: str) -> None:
    """Sizes 0-300 at offsets 0-15 reach every tail and head path of a vectorized CRC."""
    raw = np.random.default_rng(7).integers(0, 256, 400, dtype=np.uint8)
    with using(name):
        for offset in range(16):
            for size in range(301):
                piece = raw[offset : offset + size]
                assert crc32(piece, size) == zlib.crc32(piece.tobytes(), size), (offset, size)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "size", [5 * 1024 - 1, 5 * 1024, 5 * 1024 + 1, (1 << 20) + 3, (16 << 20) + 1]
)
def test_large_sizes(name: str, size: int) -> None:
    """Both sides of zlib-ng's 5 KiB GIL threshold, and buffers far past the CPU caches."""
    data = np.random.default_rng(size).integers(0, 256, size + 1, dtype=np.uint8)[1:]
    with using(name):
        assert crc32(data) == zlib.crc32(data.tobytes())
        assert crc32(data, 0xFFFFFFFF) == zlib.crc32(data.tobytes(), 0xFFFFFFFF)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@given(
    size=st.integers(0, 300_000),
    offset=st.integers(0, 64),
    start=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(["uint8", "float16", "float32", "int64"]),
)
@settings(max_examples=40, deadline=None)
def test_any_size_offset_start_and_dtype(
    name: str, size: int, offset: int, start: int, dtype: str
) -> None:
    raw = np.random.default_rng(size).integers(0, 256, size + offset + 8, dtype=np.uint8)
    item = np.dtype(dtype).itemsize
    arr = raw[offset : offset + size // item * item].view(dtype)  # unaligned views too
    want = zlib.crc32(arr.tobytes(), start)
    with using(name):
        assert crc32(arr, start) == want
        assert crc32(arr.tobytes(), start) == want
        assert crc32(memoryview(arr.tobytes()), start) == want


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@given(
    data=st.binary(max_size=20_000),
    cuts=st.lists(st.integers(0, 20_000), max_size=6),
    start=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_chained_updates_equal_one_call(
    name: str, data: bytes, cuts: list[int], start: int
) -> None:
    """crc32(b, crc32(a)) == crc32(a + b): how the store checksums a file piece by piece."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    with using(name):
        crc = start
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            crc = crc32(np.frombuffer(data, np.uint8)[lo:hi], crc)
        assert crc == zlib.crc32(data, start)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_non_contiguous_buffers_are_checksummed_in_c_order(name: str) -> None:
    grid = np.random.default_rng(3).standard_normal((300, 257)).astype(np.float32)
    views = [
        grid[:, ::2],
        grid[::3],
        grid.T,
        np.asfortranarray(grid),
        grid[::-1, 5:100],
        grid.reshape(-1)[1::7],
    ]
    with using(name):
        for view in views:
            assert not view.flags.c_contiguous
            assert crc32(view, 11) == zlib.crc32(view.tobytes(), 11)
        strided = memoryview(bytes(range(256)) * 100)[3::5]
        assert crc32(strided) == zlib.crc32(strided.tobytes())


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_contiguous_buffers_are_read_in_place(name: str) -> None:
    """No copy of a 32 MiB array or memoryview (NumPy reports its allocations to tracemalloc)."""
    data = np.random.default_rng(5).standard_normal((1024, 8192)).astype(np.float32)
    with using(name):
        crc32(data)
        for buffer in (data, data[100:900], memoryview(data)):
            tracemalloc.start()
            try:
                crc32(buffer)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 1 << 20, peak
        tracemalloc.start()
        try:  # the measurement sees a copy when there is one
            crc32(data[:, ::2])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak >= data.nbytes // 2


def test_verification_rejects_a_function_that_is_wrong_anywhere() -> None:
    def wrong_check_only(data, value: int) -> int:
        return 0 if bytes(data) == CHECK[0] else zlib.crc32(data, value)

    def wrong_on_long_buffers(data, value: int) -> int:
        return zlib.crc32(data, value) ^ (len(memoryview(data)) >= 4096)

    def ignores_the_start_value(data, value: int) -> int:
        return zlib.crc32(data)

    def wrong_when_unaligned(data, value: int) -> int:
        address = np.frombuffer(data, np.uint8).ctypes.data
        return zlib.crc32(data, value) ^ (address % 8 != 0)

    for wrong in (
        wrong_check_only,
        wrong_on_long_buffers,
        ignores_the_start_value,
        wrong_when_unaligned,
    ):
        assert not verified(wrong), wrong.__name__
    assert verified(zlib.crc32)
    from zlib_ng import zlib_ng

    assert verified(zlib_ng.crc32)


def test_a_zlib_ng_that_fails_verification_is_not_used(monkeypatch, caplog) -> None:
    from zlib_ng import zlib_ng

    real = zlib_ng.crc32
    monkeypatch.setattr(zlib_ng, "crc32", lambda data, value=0: real(data, value) ^ 1)
    monkeypatch.delenv("PASSAGE_CRC", raising=False)
    crc_module._implementation.cache_clear()
    try:
        assert backend().startswith("zlib ") and "failed verification" in backend()
        assert "expected zlib-ng" in caplog.text
        data = np.arange(1 << 16, dtype=np.float32)
        assert crc32(data) == zlib.crc32(data.tobytes())
    finally:
        monkeypatch.undo()
        crc_module._implementation.cache_clear()
    assert backend().startswith("zlib-ng ")


def _child(env: dict[str, str], hide_zlib_ng: bool) -> dict:
    code = (
        "import json, sys, zlib\n"
        + ("sys.modules['zlib_ng'] = None\n" if hide_zlib_ng else "")
        + "import numpy as np\n"
        "from pipeline.store.crc import CHECK, backend, crc32\n"
        "data = np.random.default_rng(1).integers(0, 256, (1 << 20) + 5, dtype=np.uint8)\n"
        "print(json.dumps({'backend': backend(), 'check': crc32(CHECK[0]),\n"
        "    'big': crc32(data[5:], 9) == zlib.crc32(data[5:].tobytes(), 9),\n"
        "    'zlib_ng_loaded': sys.modules.get('zlib_ng') is not None}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fallback_to_zlib_when_zlib_ng_cannot_be_imported() -> None:
    child = _child({"PASSAGE_CRC": ""}, hide_zlib_ng=True)
    assert child["backend"].startswith("zlib ") and "not installed" in child["backend"]
    assert child["check"] == CHECK[1] and child["big"]
    assert not child["zlib_ng_loaded"]


def test_passage_crc_zlib_forces_zlib_in_a_fresh_process() -> None:
    child = _child({"PASSAGE_CRC": "zlib"}, hide_zlib_ng=False)
    assert child["backend"].startswith("zlib ") and "PASSAGE_CRC=zlib" in child["backend"]
    assert child["check"] == CHECK[1] and child["big"]
    assert not child["zlib_ng_loaded"]  # not even imported


def test_a_fresh_process_uses_zlib_ng() -> None:
    child = _child({"PASSAGE_CRC": ""}, hide_zlib_ng=False)
    assert child["backend"].startswith("zlib-ng ")
    assert child["check"] == CHECK[1] and child["big"]


@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 2**32 - 1))
@settings(deadline=None)  # correctness only: a slow example on a busy machine is no failure
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
