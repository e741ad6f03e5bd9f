"""Preparing and writing data files: the prepared bytes, CRC-32 and statistics equal those of
the whole array however its elements are split over threads; direct and buffered writes give
the same file; a filesystem that refuses a direct write falls back to the page cache; the
buffer pool stays within its budget."""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.store import codecs
from pipeline.store.direct_io import ALIGN, DIRECT_MIN, O_DIRECT, BufferPool, FileWriter
from pipeline.store.prepare import encode, ranges
from pipeline.store.stats import array_stats

SIZES = [0, 1, ALIGN - 1, ALIGN, DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, 3 * DIRECT_MIN + 7]


def _buffer(size: int, seed: int) -> np.ndarray:
    buf = BufferPool(1).take(size)
    buf[:size] = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    return buf


@pytest.mark.parametrize("size", SIZES)
def test_direct_and_buffered_write_the_same_file(tmp_path: Path, size: int) -> None:
    buf = _buffer(size, size)
    direct = FileWriter(direct=True)
    for writer, name in ((direct, "direct"), (FileWriter(direct=False, durable=True), "buf")):
        writer.write_prepared(tmp_path / name, buf, size)
        assert (tmp_path / name).read_bytes() == buf[:size].tobytes()
    assert direct.direct == bool(O_DIRECT)  # this filesystem took the direct writes


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this system")
def test_refused_direct_write_falls_back_to_the_page_cache(tmp_path: Path) -> None:
    """A buffer one byte off the alignment makes the kernel refuse the direct write with
    EINVAL, as filesystems without O_DIRECT do (this machine has none to test on)."""

    class Misaligned(FileWriter):
        def _write_direct_block(self, path, data, size, padded):  # type: ignore[override]
            shifted = np.empty(padded + 1, np.uint8)[1:]
            shifted[:] = data[:padded]
            super()._write_direct_block(path, shifted, size, padded)

    size = DIRECT_MIN + 5
    buf = _buffer(size, 1)
    writer = Misaligned(direct=True)
    writer.write_prepared(tmp_path / "f", buf, size)
    assert (tmp_path / "f").read_bytes() == buf[:size].tobytes()
    assert not writer.direct  # later files go straight to the page cache
    writer.write_prepared(tmp_path / "g", buf, size)
    assert (tmp_path / "g").read_bytes() == buf[:size].tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("step", "threads"), [(1 << 20, 1), (1000, 2), (77_777, 3)])
def test_prepared_npy_equals_the_whole_array_however_split(
    tmp_path: Path, dtype: str, step: int, threads: int
) -> None:
    rng = np.random.default_rng(threads)
    arrays = [
        (rng.random((300, 26, 26, 8), dtype=np.float32) - 0.5) * 1e5,  # float16 overflows
        rng.random((300, 11, 11, 16), dtype=np.float32),
        np.zeros((0, 4), np.float32),
        np.arange(24, dtype=np.int64).reshape(4, 6),  # ints are stored as they are
    ]
    arrays[1][7, 3, 3, 3] = np.nan
    arrays[1][9, 0, 0, 0] = -np.inf
    pool = BufferPool(1 << 30)
    jobs = [encode("npy", a, np.dtype(dtype), pool) for a in arrays]
    work = ranges(jobs, step)
    rng.shuffle(work)  # ranges finish in any order, on any thread
    with ThreadPoolExecutor(threads) as pool_threads:
        list(pool_threads.map(lambda r: r[0].run(r[1], r[2]), work))
    for i, (arr, job) in enumerate(zip(arrays, jobs, strict=True)):
        path = tmp_path / f"{i}.npy"
        FileWriter().write_prepared(path, job.data, job.size)
        crc, stats = job.finish()
        with np.errstate(over="ignore"):
            want = arr.astype(dtype) if arr.dtype.kind == "f" else arr
        loaded = np.load(path)
        assert loaded.dtype == want.dtype
        np.testing.assert_array_equal(loaded, want)
        assert crc == zlib.crc32(path.read_bytes()) == codecs.file_checksum(path)[1]
        assert stats == array_stats(want)
        assert job.size == path.stat().st_size


def test_ranges_cover_every_element_once_in_file_order() -> None:
    pool = BufferPool(1 << 30)
    jobs = [
        encode("npy", np.zeros(n, np.float32), np.dtype("float32"), pool) for n in (10, 5000, 1)
    ]
    for step in (1, 64, 5000, 1 << 20):
        work = ranges(jobs, step)
        order = [next(i for i, x in enumerate(jobs) if x is j) for j, _, _ in work]
        assert order == sorted(order)
        for job in jobs:
            spans = [(a, b) for j, a, b in work if j is job]
            assert spans[0][0] == 0 and spans[-1][1] == job.work
            assert all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:], strict=False))
            assert all(0 < b - a <= step for a, b in spans)


class _WatchedCondition(threading.Condition):
    """The pool's condition, unchanged but for an event set when a thread starts to wait on
    it: proof that a taker is blocked, with no sleep to guess how long blocking takes."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_pool_blocks_past_its_budget_and_reuses_buffers() -> None:
    pool = BufferPool(3 * ALIGN)
    watched = pool._cond = _WatchedCondition()
    a, b = pool.take(ALIGN), pool.take(2 * ALIGN)
    assert not watched.waiting.is_set()  # within the budget: no wait
    got: list[np.ndarray] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(ALIGN)), daemon=True)
    waiter.start()
    try:
        # The taker waits on the pool (the event), and has not returned: nothing was given back.
        assert watched.waiting.wait(timeout=30), "the taker never waited on the pool"
        with watched:  # the taker released the lock to wait, and holds nothing yet
            assert got == [] and waiter.is_alive()
    finally:
        pool.give(a)
        waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert got and got[0] is a  # the freed buffer, not a new one
    pool.give(b)
    pool.give(got[0])
    big = pool.take(10 * ALIGN)  # larger than the budget: granted once nothing is in use
    assert big.size == 10 * ALIGN and big.ctypes.data % ALIGN == 0


def test_json_files_are_whole_units_of_work_on_any_thread(tmp_path: Path) -> None:
    pool = BufferPool(1 << 30)
    arrays = [np.arange(n, dtype=np.float32).reshape(-1, 2) / 3 for n in (2000, 6, 0, 4000)]
    jobs = [encode("json", a, np.dtype("float16"), pool) for a in arrays]
    jobs.insert(1, encode("npy", np.ones(5000, np.float32), np.dtype("float32"), pool))
    work = ranges(jobs, 64)
    spans = [[(a, b) for j, a, b in work if j is job] for job in jobs]
    assert [len(s) for s in spans] == [1, 79, 1, 1, 1]  # 5000 NPY elements in steps of 64
    assert all(s == [(0, 1)] for i, s in enumerate(spans) if i != 1)  # a JSON text: one unit
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda r: r[0].run(r[1], r[2]), work))
    for i, (arr, job) in enumerate(zip(arrays, jobs[:1] + jobs[2:], strict=True)):
        path = tmp_path / f"{i}.json"
        FileWriter().write_prepared(path, job.data, job.size)
        crc, stats = job.finish()
        assert crc == zlib.crc32(path.read_bytes())
        back = codecs.read_array(path, "json")
        np.testing.assert_array_equal(back, arr.astype(np.float16))
        assert stats == array_stats(arr.astype(np.float16))
