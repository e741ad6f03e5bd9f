"""QueuedWriter with several file threads: the manifest keeps submission order, and a failure
surfaces at close with no later file committed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.store import QueuedWriter, RunWriter, open_run, read_manifest

LAYERS = [
    {"index": i, "name": n, "class": "Dense", "shape": [3, 2], "dir": f"{i:03d}-{n}"}
    for i, n in enumerate(("a", "b", "c"))
]


def _writer(path) -> RunWriter:
    return RunWriter(path, {"fingerprint": "x", "layers": LAYERS, "num_patterns": 28})


def _batches(n: int, size: int = 4):
    rng = np.random.default_rng(0)
    for first in range(0, n * size, size):
        yield [(rec["name"], None, first, rng.random((size, 3, 2), np.float32)) for rec in LAYERS]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_manifest_order_is_submission_order(tmp_path, threads):
    with _writer(tmp_path / "run") as writer:
        queued = QueuedWriter(writer, maxsize=2, threads=threads)
        expected = []
        for items in _batches(7):
            queued.submit(items)
            expected += [(layer, first) for layer, _, first, _ in items]
        queued.close()
    entries = read_manifest(tmp_path / "run" / "manifest.jsonl").entries
    assert [(e.layer, e.first) for e in entries] == expected
    run = open_run(tmp_path / "run")
    assert run.get("b", 27).shape == (3, 2)


def test_failure_while_preparing_raises_in_submit_and_keeps_earlier_batches(tmp_path):
    with _writer(tmp_path / "run") as writer:
        queued = QueuedWriter(writer, maxsize=2, threads=2)
        batches = list(_batches(4))
        batches[1][1] = ("no-such-layer", None, 4, batches[1][1][3])
        with pytest.raises(KeyError):
            for items in batches:
                queued.submit(items)
        queued.close()  # what was queued before the failure is written
    entries = read_manifest(tmp_path / "run" / "manifest.jsonl").entries
    assert [(e.layer, e.first) for e in entries] == [("a", 0), ("b", 0), ("c", 0)]


def test_failure_while_writing_raises_and_stops_committing(tmp_path):
    """Layer b's folder is taken by a file: its first write fails on a writing thread; the
    error reaches the caller and nothing after it is committed."""
    with _writer(tmp_path / "run") as writer:
        blocker = tmp_path / "run" / "data" / "batch" / "001-b"
        blocker.parent.mkdir(parents=True)
        blocker.write_text("not a folder")
        queued = QueuedWriter(writer, maxsize=2, threads=3)
        with pytest.raises(StoreError, match="001-b"):
            try:
                for items in _batches(6):
                    queued.submit(items)
            finally:
                queued.close()
    entries = read_manifest(tmp_path / "run" / "manifest.jsonl").entries
    assert [(e.layer, e.first) for e in entries] == [("a", 0)]
    assert writer.pool._in_use == 0  # every prepared buffer was given back


def test_batches_larger_than_the_pool_never_deadlock(tmp_path):
    """Odd-sized files (padding to the alignment), a one-batch queue, a pool that starts tiny
    and a later batch larger than the first (a resumed run misses more layers): all written."""
    import threading

    rng = np.random.default_rng(1)
    with _writer(tmp_path / "run") as writer:
        writer.pool.budget = 1
        queued = QueuedWriter(writer, maxsize=1, threads=2)
        sizes = [1, 3, 3, 3, 3]  # layers per batch: the first batch is the smallest

        def feed() -> None:
            for b, n in enumerate(sizes):
                queued.submit(
                    [
                        (r["name"], None, b * 4, rng.random((4, 3, 2), np.float32))
                        for r in LAYERS[:n]
                    ]
                )
            queued.close()

        worker = threading.Thread(target=feed, daemon=True)
        worker.start()
        worker.join(timeout=60)  # a polling limit, not a timing assertion
        assert not worker.is_alive(), "QueuedWriter deadlocked"
    entries = read_manifest(tmp_path / "run" / "manifest.jsonl").entries
    assert len(entries) == sum(sizes)


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "data").rglob("*"))
        if p.is_file()
    }


def test_batches_prepared_without_waiting_equal_waited_ones(tmp_path):
    """``submit(wait=False)`` then ``join`` (as capture does while it loads the next patterns),
    or no ``join`` at all (the next ``submit`` and ``close`` finish the batch): the same files
    and manifest as submitting and waiting."""
    runs = {}
    for how in ("wait", "join", "no-join"):
        with _writer(tmp_path / how) as writer:
            queued = QueuedWriter(writer, maxsize=2, threads=2, helpers=2)
            for items in _batches(5, size=100_000):  # 600,000 elements: 3 ranges per file
                queued.submit(items, wait=how == "wait")
                if how == "join":
                    queued.join()
            queued.close()
            assert writer.pool._in_use == 0
        runs[how] = (_files(tmp_path / how), (tmp_path / how / "manifest.jsonl").read_bytes())
    assert runs["join"] == runs["wait"] == runs["no-join"]
    assert len(runs["wait"][0]) == 15


def test_failure_while_filling_raises_at_join_and_keeps_earlier_batches(tmp_path, monkeypatch):
    """A range that fails on a helper thread (injected: real failures here are memory
    errors) reaches the caller at ``join``; earlier batches are still written, and every
    buffer is given back."""
    from pipeline.store.prepare import Encoded

    real_run = Encoded.run

    def run(self, start, stop):
        if self.stored.shape[0] == 3000:  # only the third batch's files
            raise MemoryError("injected")
        real_run(self, start, stop)

    monkeypatch.setattr(Encoded, "run", run)
    with _writer(tmp_path / "run") as writer:
        queued = QueuedWriter(writer, maxsize=2, threads=2, helpers=1)
        sizes = [5000, 5000, 3000, 5000]
        with pytest.raises(MemoryError, match="injected"):
            try:
                first = 0
                for size in sizes:
                    items = next(_batches(1, size))
                    queued.submit([(n, e, first, a) for n, e, _, a in items], wait=False)
                    queued.join()
                    first += size
            finally:
                queued.close()
        assert writer.pool._in_use == 0
    entries = read_manifest(tmp_path / "run" / "manifest.jsonl").entries
    assert [(e.layer, e.first) for e in entries] == [(n, f) for f in (0, 5000) for n in "abc"]
