"""``QueuedWriter``: a run's files written behind a bounded queue, so disk writes overlap the
next forward pass while memory stays bounded. Their entries go to a ``Sink``: the run's
``RunWriter`` (manifest lines), or an ``EntryList`` on a cluster worker, whose client appends
them."""

from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from .chunk_files import DataFiles
from .direct_io import ALIGN, BufferPool
from .manifest import ManifestEntry
from .parallel_fill import Filling, Item, Preparer
from .prepare import stored_dtype


class Sink(Protocol):
    """Where a ``QueuedWriter`` writes files (``data``) and hands their entries (``commit``,
    in submission order, each once its file is complete)."""

    data: DataFiles
    dtype: np.dtype

    @property
    def pool(self) -> BufferPool: ...

    def commit(self, entry: ManifestEntry) -> ManifestEntry: ...


class EntryList:
    """A ``Sink`` that keeps the entries instead of appending manifest lines: a cluster
    worker writes a task's files and returns their entries to the client."""

    def __init__(self, data: DataFiles) -> None:
        self.data = data
        self.dtype = data.dtype
        self.entries: list[ManifestEntry] = []

    @property
    def pool(self) -> BufferPool:
        return self.data.pool

    def commit(self, entry: ManifestEntry) -> ManifestEntry:
        self.entries.append(entry)
        return entry


class QueuedWriter:
    """Writes a run's files behind a bounded queue, so disk writes overlap the next forward
    pass while memory stays bounded.

    ``submit`` prepares a batch's files (converting, checksumming and measuring the bytes into
    aligned buffers) on the calling thread and ``helpers`` more threads, which take the
    batch's element ranges one at a time, then queues them. ``submit(..., wait=False)`` returns
    as soon as the helpers have started, so the caller can load its next patterns meanwhile;
    ``join`` (or the next ``submit``, or ``close``) then takes part in the work and waits for
    it. The caller's model stays idle while a batch is prepared: preparing beside a
    multi-threaded forward pass slows the forward pass more than it saves. ``threads`` threads
    write the prepared files (direct I/O: they wait on the disk, using almost no CPU), and
    manifest lines are appended in submission order, each after its file is complete. The
    buffers of prepared files are bounded by ``maxsize`` batches (``submit`` blocks). An error
    on a writing thread is raised again in the caller at the next ``submit`` or at ``close``.
    """

    _STOP = object()

    def __init__(
        self, writer: Sink, maxsize: int = 4, threads: int = 4, helpers: int | None = None
    ) -> None:
        self.writer = writer
        self.maxsize = maxsize
        self._threads = max(1, threads)
        self._io = ThreadPoolExecutor(self._threads, "passage-io")
        self._preparer = Preparer(writer.data, helpers)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._filling: Filling | None = None
        self._thread = threading.Thread(target=self._run, name="passage-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[Item], wait: bool = True) -> None:
        """Prepare and queue one batch of ``(layer, epoch, first, array)`` files; with
        ``wait=False`` the preparation goes on in the helpers until ``join``."""
        self.join()
        self._check()
        # Room for maxsize batches like this one in the queue and writing, plus the one being
        # prepared (whose buffers cannot be given back before it is queued: no self-deadlock).
        arrays = [np.asarray(arr) for *_, arr in items]
        batch = sum(
            a.size * stored_dtype(a, self.writer.dtype).itemsize + 2 * ALIGN for a in arrays
        )
        self.writer.pool.budget = max(self.writer.pool.budget, (self.maxsize + 1) * batch)
        converted = [(*item[:3], a) for item, a in zip(items, arrays, strict=True)]
        self._filling = self._preparer.start(converted)
        if wait:
            self.join()

    def join(self) -> None:
        """Finish preparing the batch submitted last (working on it too), then queue it for
        writing. Nothing to do when no batch is being prepared."""
        filling, self._filling = self._filling, None
        if filling is not None:
            self._queue.put(self._preparer.finish(filling))

    def _run(self) -> None:
        inflight: collections.deque[Future[ManifestEntry]] = collections.deque()
        while True:
            item = self._queue.get()
            if item is self._STOP:
                self._commit(inflight, keep=0)
                return
            if self._error is not None:
                for p in item:  # drain without writing after a failure
                    self.writer.data.discard(p)
                continue
            inflight.extend(self._io.submit(self.writer.data.store, p) for p in item)
            self._commit(inflight, keep=self._threads)

    def _commit(self, inflight: collections.deque[Future[ManifestEntry]], keep: int) -> None:
        """Append the manifest lines of the oldest files, in order, until ``keep`` remain in
        flight; after a failure only wait for them."""
        while len(inflight) > keep:
            fut = inflight.popleft()
            if self._error is not None:
                fut.exception()
                continue
            try:
                self.writer.commit(fut.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Finish the batch being prepared, wait until everything queued is written; raise the
        first error if any. Closing again only raises that error again."""
        failure: BaseException | None = None
        try:
            self.join()
        except BaseException as exc:  # noqa: BLE001 - raised below, once the queue is written
            failure = exc
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        self._io.shutdown()
        self._preparer.shutdown()
        self._error = self._error or failure
        self._check()
