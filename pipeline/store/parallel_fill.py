"""Preparing a batch of data files on several threads: the caller and ``helpers`` more
threads take the batch's element ranges one at a time (converting, checksumming and measuring
them into the files' buffers); the first error stops the others and reaches the caller."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from .chunk_files import DataFiles, Pending
from .prepare import Encoded, ranges

Item = tuple[str, int | None, int, np.ndarray]  # (layer, epoch, first, array)


class Filling:
    """One batch being prepared: its element ranges, taken one at a time by whichever thread
    is free (the caller and the helpers); the first error stops the others."""

    def __init__(self, pending: list[Pending], work: list[tuple[Encoded, int, int]]) -> None:
        self.pending = pending
        self.helpers: list[Future[None]] = []
        self.error: BaseException | None = None
        self._work = iter(work)
        self._lock = threading.Lock()

    def work(self) -> None:
        while True:
            with self._lock:
                item = next(self._work, None) if self.error is None else None
            if item is None:
                return
            job, start, stop = item
            try:
                job.run(start, stop)
            except BaseException as exc:  # noqa: BLE001 - raised by finish in the caller
                with self._lock:
                    self.error = self.error or exc
                return


class Preparer:
    """``start`` a batch (its files named and given buffers, the helpers set to work), then
    ``finish`` it: work on it too, wait for the helpers, and get its prepared files."""

    def __init__(self, data: DataFiles, helpers: int | None = None) -> None:
        self.data = data
        # One helper per core (up to 4): the caller is busy loading its next patterns while
        # the helpers start. On 2 cores, CNN capture / bare pass side by side in three runs:
        # 2 helpers 0.69, 0.68, 0.66; 1 helper 0.63, 0.68, 0.62; 3 helpers 0.61.
        helpers = min(4, os.cpu_count() or 2) if helpers is None else helpers
        self._pool = ThreadPoolExecutor(helpers, "passage-prep") if helpers > 0 else None
        self._count = max(0, helpers)

    def start(self, items: list[Item]) -> Filling:
        """Begin preparing ``items``: the helpers start on its ranges; ``finish`` ends it."""
        pending: list[Pending] = []
        try:
            for layer, epoch, first, arr in items:
                pending.append(self.data.prepare(layer, epoch, first, arr))
        except BaseException:
            for p in pending:
                self.data.discard(p)
            raise
        filling = Filling(pending, ranges([p.encoded for p in pending]))
        if self._pool is not None:
            filling.helpers = [self._pool.submit(filling.work) for _ in range(self._count)]
        return filling

    def finish(self, filling: Filling) -> list[Pending]:
        """Prepare what is left of ``filling`` on this thread and wait for the helpers; its
        files, ready to write. On an error every buffer goes back and the error is raised."""
        try:
            filling.work()
        finally:
            wait(filling.helpers)  # no helper may still fill a buffer once this returns
        if filling.error is not None:
            for p in filling.pending:
                self.data.discard(p)
            raise filling.error
        for p in filling.pending:
            p.encoded.release_source()
        return filling.pending

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
