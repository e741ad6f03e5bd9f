"""Write a run: data files (temp name + rename), then their manifest line, never the reverse.

``RunWriter`` owns the run directory while it writes (lock file), resumes from what the
manifest already holds, and turns a full or read-only disk into one clear error that leaves
the store consistent. ``QueuedWriter`` runs it on a thread behind a bounded queue, so disk
writes overlap the next forward pass while memory stays bounded.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import queue
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import DiskFullError, StoreError
from . import codecs, naming
from .files import ALIGN, BufferPool, FileWriter
from .lock import LOCK, RunLock
from .manifest import MANIFEST, METRICS, RUN_JSON, SCHEMA_VERSION, ManifestEntry, read_manifest
from .prepare import Encoded, encode, ranges, stored_dtype

log = logging.getLogger(__name__)

# Full disk, quota, file-size limit (RLIMIT_FSIZE), read-only or forbidden folder.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
TMP_MARK = ".tmp"
POOL_BUDGET = 64 << 20  # prepared-file buffers of a writer used directly (QueuedWriter raises it)


def disk_error(exc: OSError, what: Path | str) -> StoreError:
    """Map an OSError from a write to our error; full/read-only disks get their own class."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_ERRORS:
        return DiskFullError(
            f"cannot write {what}: {reason}; the run stays consistent: free space (or make the "
            "folder writable) and rerun the same command to resume"
        )
    return StoreError(f"cannot write {what}: {reason}")


def _remove(tmp: Path) -> None:
    """Remove a temporary after a failed write, if there is one (its folder may be gone)."""
    with contextlib.suppress(OSError):
        tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + f"{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise disk_error(exc, path) from exc


class RunWriter:
    """Owns one run directory while writing into it.

    ``info`` is the run description stored as ``run.json``; it must hold ``fingerprint`` (what
    makes two captures the same run) and ``layers`` (records with ``name`` and ``dir``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        info: dict[str, Any],
        fmt: str = "npy",
        dtype: str = "float32",
        overwrite: bool = False,
        durable: bool = False,
        direct_io: bool = True,
    ) -> None:
        if fmt not in codecs.FORMATS:
            raise StoreError(f"format: expected one of {list(codecs.FORMATS)}, received {fmt!r}")
        self.root = Path(run_dir)
        self.info = dict(info)
        self.fmt = fmt
        self.ext = codecs.EXTENSIONS[fmt]
        self.dtype = np.dtype(dtype)
        self.overwrite = overwrite
        self.durable = durable
        self.files = FileWriter(direct=direct_io, durable=durable)
        self.pool = BufferPool(POOL_BUDGET)
        self.lock = RunLock(self.root)
        self.done: dict[tuple[int | None, str, int], ManifestEntry] = {}
        self._dirs = {rec["name"]: rec["dir"] for rec in self.info["layers"]}
        for name, folder in self._dirs.items():
            if not isinstance(folder, str) or not naming.is_safe_dir(folder):
                raise StoreError(
                    f"layer {name!r}: expected a plain layer folder name such as "
                    f"'003-dense', received {folder!r}; it must stay inside the run"
                )
        self._made: set[Path] = set()
        self._manifest: Any = None
        self._metrics: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> RunWriter:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        self.lock.acquire()
        try:
            self._prepare()
        except BaseException:
            self.lock.release()
            raise
        return self

    def _prepare(self) -> None:
        existing = self._existing_info()
        if existing is not None and existing.get("fingerprint") != self.info["fingerprint"]:
            if not self.overwrite:
                raise StoreError(
                    f"{self.root} holds a different run (model {existing.get('model')!r}, "
                    f"patterns {existing.get('patterns')!r}); choose another --out or pass "
                    "--overwrite to replace it"
                )
            self._clear()
            existing = None
        elif existing is None and not self._is_empty():
            if not self.overwrite:
                raise StoreError(
                    f"{self.root} is not empty and holds no Passage run; choose an empty or new "
                    "--out folder, or pass --overwrite to replace its contents"
                )
            self._clear()
        elif existing is not None and self.overwrite:
            self._clear()
            existing = None
        self._clean_temporaries()
        read = read_manifest(self.root / MANIFEST)
        if read.bad_lines:
            log.warning(
                "%s: dropping %d malformed manifest line(s) %s before appending",
                self.root / MANIFEST,
                len(read.bad_lines),
                read.bad_lines,
            )
        entries, lost = self._present(read.entries)
        if lost:
            log.warning(
                "%s: %d listed file(s) are missing or have the wrong size (%s%s); they will be "
                "captured again",
                self.root,
                len(lost),
                ", ".join(e.path for e in lost[:3]),
                ", ..." if len(lost) > 3 else "",
            )
        if read.bad_lines or lost:
            self._rewrite_manifest(entries)
        self.done = {e.key: e for e in entries}
        if self.done:
            log.info("resuming %s: %d file(s) already complete", self.root, len(self.done))
        self.info.setdefault("schema_version", SCHEMA_VERSION)
        self.info["format"] = self.fmt
        self.info["dtype"] = self.dtype.name
        atomic_write_bytes(
            self.root / RUN_JSON, orjson.dumps(self.info, option=orjson.OPT_INDENT_2)
        )
        try:
            self._manifest = (self.root / MANIFEST).open("ab")
        except OSError as exc:
            raise disk_error(exc, self.root / MANIFEST) from exc

    def _existing_info(self) -> dict[str, Any] | None:
        from .runinfo import read_run_json

        return read_run_json(self.root / RUN_JSON, lenient=True)  # {} when damaged: no match

    def _is_empty(self) -> bool:
        """Nothing here but our lock and temporaries (a capture killed before run.json)."""
        return all(p.name == LOCK or TMP_MARK in p.name for p in self.root.iterdir())

    def _clear(self) -> None:
        log.info("--overwrite: removing the previous contents of %s", self.root)
        for child in self.root.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _clean_temporaries(self) -> None:
        data = self.root / "data"
        removed = 0
        if data.is_dir():
            for tmp in data.rglob(f"*{TMP_MARK}*"):
                tmp.unlink(missing_ok=True)
                removed += 1
        for tmp in self.root.glob(f"*{TMP_MARK}*"):
            tmp.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run", removed)

    def _present(
        self, entries: list[ManifestEntry]
    ) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
        """Split manifest entries into (file present with its size, missing or resized).

        One ``stat`` per file: cheap enough for every resume. A file of the right size but
        wrong content is found by ``passage verify``; delete it and it is captured again.
        """
        kept: list[ManifestEntry] = []
        lost: list[ManifestEntry] = []
        latest = {e.key: e for e in entries}
        for e in latest.values():
            try:
                ok = (self.root / e.path).stat().st_size == e.bytes
            except OSError:
                ok = False
            (kept if ok else lost).append(e)
        if len(kept) == len(entries):
            return entries, []
        return kept, lost

    def _rewrite_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        atomic_write_bytes(self.root / MANIFEST, b"".join(e.to_json_line() for e in entries))

    def close(self) -> None:
        for fh in (self._manifest, self._metrics):
            if fh is not None:
                try:
                    fh.close()
                except OSError as exc:  # pragma: no cover - close of an append-only file
                    log.warning("closing %s: %s", fh.name, exc)
        self._manifest = self._metrics = None
        self.lock.release()

    def __enter__(self) -> RunWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    def has(self, layer: str, epoch: int | None, first: int) -> bool:
        return (epoch, layer, first) in self.done

    def write(self, layer: str, epoch: int | None, first: int, arr: np.ndarray) -> ManifestEntry:
        """Write one (epoch, layer, chunk) file and append its manifest line."""
        pending = self.prepare(layer, epoch, first, arr)
        try:
            pending.encoded.run(0, pending.encoded.work)
        except BaseException:
            self.discard(pending)  # the buffer goes back even when filling fails
            raise
        return self.commit(self.store(pending))

    def prepare(self, layer: str, epoch: int | None, first: int, arr: np.ndarray) -> Pending:
        """Start one data file: its name, header and buffer. Its element ranges are then
        filled with ``pending.encoded.run`` (on any threads), and ``store`` writes it."""
        rel = naming.data_path(self._dirs[layer], epoch, first, self.ext)
        return Pending(layer, epoch, int(first), rel, encode(self.fmt, arr, self.dtype, self.pool))

    def store(self, pending: Pending) -> ManifestEntry:
        """Write a prepared file into place (temporary name, then rename) and give its buffer
        back; its manifest line is ``commit``'s job. Safe on several threads (distinct files)."""
        enc = pending.encoded
        final = self.root / pending.rel
        folder = final.parent
        tmp = final.with_name(final.name + f"{TMP_MARK}{os.getpid()}")
        try:
            crc, (lo, hi, bad) = enc.finish()
            if folder not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(folder)
            self.files.write_prepared(tmp, enc.data, enc.size)
            os.replace(tmp, final)
        except OSError as exc:
            _remove(tmp)
            raise disk_error(exc, final) from exc
        finally:
            self.discard(pending)
        stored = enc.stored
        return ManifestEntry(
            path=pending.rel,
            layer=pending.layer,
            epoch=pending.epoch,
            first=pending.first,
            count=int(stored.shape[0]),
            shape=tuple(int(v) for v in stored.shape[1:]),
            dtype=stored.dtype.name,
            min=lo,
            max=hi,
            nonfinite=bad,
            bytes=enc.size,
            checksum=codecs.format_checksum(crc),
        )

    def discard(self, pending: Pending) -> None:
        """Give a prepared file's buffer back to the pool (after writing, or instead of it)."""
        if pending.encoded.buffer is not None:
            self.pool.give(pending.encoded.buffer)
            pending.encoded.buffer = None

    def commit(self, entry: ManifestEntry) -> ManifestEntry:
        """Append the manifest line of a file that ``store`` completed."""
        self._append(self._manifest, entry.to_json_line(), MANIFEST)
        self.done[entry.key] = entry
        return entry

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (training mode)."""
        if self._metrics is None:
            try:
                self._metrics = (self.root / METRICS).open("ab")
            except OSError as exc:
                raise disk_error(exc, self.root / METRICS) from exc
        self._append(
            self._metrics, orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n", METRICS
        )

    def _append(self, fh: Any, line: bytes, name: str) -> None:
        try:
            fh.write(line)
            fh.flush()
            if self.durable:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise disk_error(exc, self.root / name) from exc


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
        self, writer: RunWriter, maxsize: int = 4, threads: int = 4, helpers: int | None = None
    ) -> None:
        self.writer = writer
        self.maxsize = maxsize
        self._threads = max(1, threads)
        self._io = ThreadPoolExecutor(self._threads, "passage-io")
        # One helper per core (up to 4): the caller is busy loading its next patterns while
        # the helpers start. On 2 cores, CNN capture / bare pass side by side in three runs:
        # 2 helpers 0.69, 0.68, 0.66; 1 helper 0.63, 0.68, 0.62; 3 helpers 0.61.
        helpers = min(4, os.cpu_count() or 2) if helpers is None else helpers
        self._helpers = ThreadPoolExecutor(helpers, "passage-prep") if helpers > 0 else None
        self._helper_count = max(0, helpers)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._filling: _Filling | None = None
        self._thread = threading.Thread(target=self._run, name="passage-writer", daemon=True)
        self._thread.start()

    def submit(
        self, items: list[tuple[str, int | None, int, np.ndarray]], wait: bool = True
    ) -> None:
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
        pending: list[Pending] = []
        try:
            for (layer, epoch, first, _), arr in zip(items, arrays, strict=True):
                pending.append(self.writer.prepare(layer, epoch, first, arr))
        except BaseException:
            for p in pending:
                self.writer.discard(p)
            raise
        filling = _Filling(pending, ranges([p.encoded for p in pending]))
        if self._helpers is not None:
            filling.helpers = [
                self._helpers.submit(filling.work) for _ in range(self._helper_count)
            ]
        self._filling = filling
        if wait:
            self.join()

    def join(self) -> None:
        """Finish preparing the batch submitted last (working on it too), then queue it for
        writing. Nothing to do when no batch is being prepared."""
        filling, self._filling = self._filling, None
        if filling is None:
            return
        try:
            filling.work()
        finally:
            wait(filling.helpers)  # no helper may still fill a buffer once this returns
        if filling.error is not None:
            for p in filling.pending:
                self.writer.discard(p)
            raise filling.error
        for p in filling.pending:
            p.encoded.release_source()
        self._queue.put(filling.pending)

    def _run(self) -> None:
        inflight: collections.deque[Future[ManifestEntry]] = collections.deque()
        while True:
            item = self._queue.get()
            if item is self._STOP:
                self._commit(inflight, keep=0)
                return
            if self._error is not None:
                for p in item:  # drain without writing after a failure
                    self.writer.discard(p)
                continue
            inflight.extend(self._io.submit(self.writer.store, p) for p in item)
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
        if self._helpers is not None:
            self._helpers.shutdown()
        self._error = self._error or failure
        self._check()


class _Filling:
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
            except BaseException as exc:  # noqa: BLE001 - raised by join in the caller
                with self._lock:
                    self.error = self.error or exc
                return


@dataclass
class Pending:
    """A data file prepared (or being prepared) and not yet written."""

    layer: str
    epoch: int | None
    first: int
    rel: str
    encoded: Encoded
