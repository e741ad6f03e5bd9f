"""Write a run: data files (temp name + rename), then their manifest line, never the reverse.

``RunWriter`` owns the run directory while it writes (lock file), resumes from what the
manifest already holds, and turns a full or read-only disk into one clear error that leaves
the store consistent. ``QueuedWriter`` runs it on a thread behind a bounded queue, so disk
writes overlap the next forward pass while memory stays bounded.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import queue
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import DiskFullError, StoreError
from . import codecs, naming
from .files import FileWriter
from .lock import LOCK, RunLock
from .manifest import MANIFEST, METRICS, RUN_JSON, SCHEMA_VERSION, ManifestEntry, read_manifest

log = logging.getLogger(__name__)

# Full disk, quota, file-size limit (RLIMIT_FSIZE), read-only or forbidden folder.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
TMP_MARK = ".tmp"


def disk_error(exc: OSError, what: Path | str) -> StoreError:
    """Map an OSError from a write to our error; full/read-only disks get their own class."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_ERRORS:
        return DiskFullError(
            f"cannot write {what}: {reason}; the run stays consistent: free space (or make the "
            "folder writable) and rerun the same command to resume"
        )
    return StoreError(f"cannot write {what}: {reason}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + f"{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(exc, path) from exc


def array_stats(arr: np.ndarray) -> tuple[float | None, float | None, int]:
    """(min, max, nonfinite count) over the finite values; two passes when all are finite."""
    if arr.size == 0:
        return None, None, 0
    if arr.dtype.kind not in "fc":
        return float(arr.min()), float(arr.max()), 0
    lo, hi = arr.min(), arr.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return float(lo), float(hi), 0
    finite = np.isfinite(arr)
    bad = int(arr.size - np.count_nonzero(finite))
    if bad == arr.size:
        return None, None, bad
    vals = arr[finite]
    return float(vals.min()), float(vals.max()), bad


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
        if fmt not in codecs.ENCODERS:
            raise StoreError(f"format: expected one of {sorted(codecs.ENCODERS)}, received {fmt!r}")
        self.root = Path(run_dir)
        self.info = dict(info)
        self.fmt = fmt
        self.ext = codecs.EXTENSIONS[fmt]
        self.dtype = np.dtype(dtype)
        self.overwrite = overwrite
        self.durable = durable
        self.files = FileWriter(direct=direct_io, durable=durable)
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
        path = self.root / RUN_JSON
        if not path.exists():
            return None
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {"fingerprint": None}

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
        return self.commit(self.write_file(layer, epoch, first, arr))

    def write_file(
        self, layer: str, epoch: int | None, first: int, arr: np.ndarray
    ) -> ManifestEntry:
        """Write one data file into place; its manifest line is ``commit``'s job. Safe to run
        on several threads at once (distinct files)."""
        if arr.dtype != self.dtype and arr.dtype.kind == "f":
            with np.errstate(over="ignore"):  # overflow becomes +-inf, counted as nonfinite
                arr = arr.astype(self.dtype)
        rel = naming.data_path(self._dirs[layer], epoch, first, self.ext)
        final = self.root / rel
        folder = final.parent
        tmp = final.with_name(final.name + f"{TMP_MARK}{os.getpid()}")
        try:
            if folder not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(folder)
            size, crc = self.files.write(tmp, codecs.ENCODERS[self.fmt](arr))
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise disk_error(exc, final) from exc
        lo, hi, bad = array_stats(arr)
        entry = ManifestEntry(
            path=rel,
            layer=layer,
            epoch=epoch,
            first=int(first),
            count=int(arr.shape[0]),
            shape=tuple(int(v) for v in arr.shape[1:]),
            dtype=arr.dtype.name,
            min=lo,
            max=hi,
            nonfinite=bad,
            bytes=size,
            checksum=codecs.format_checksum(crc),
        )
        return entry

    def commit(self, entry: ManifestEntry) -> ManifestEntry:
        """Append the manifest line of a file that ``write_file`` completed."""
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
    """Runs a RunWriter on one background thread behind a bounded queue.

    ``submit`` blocks when ``maxsize`` batches are waiting, which bounds memory; an error on the
    thread is raised again in the caller at the next ``submit`` or at ``close``. With
    ``threads`` > 1 data files are written by that many threads at once (the kernel's
    page-cache copy is the bottleneck and releases the GIL; at most ``threads`` files beyond
    the queue are in flight); manifest lines are still appended in submission order, each
    after its file is complete, so the manifest is the same as with one thread.
    """

    _STOP = object()

    def __init__(self, writer: RunWriter, maxsize: int = 4, threads: int = 2) -> None:
        self.writer = writer
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, "passage-file") if threads > 1 else None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="passage-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending: collections.deque[Future[ManifestEntry]] = collections.deque()
        while True:
            item = self._queue.get()
            if item is self._STOP:
                self._commit(pending, keep=0)
                return
            if self._error is not None:
                continue  # drain without writing after a failure
            try:
                if self._pool is None:
                    for layer, epoch, first, arr in item:
                        self.writer.write(layer, epoch, first, arr)
                    continue
                pending.extend(self._pool.submit(self.writer.write_file, *args) for args in item)
                # keep the file threads busy across batches; commit in order behind them
                self._commit(pending, keep=self._threads)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._error = exc
                self._commit(pending, keep=0)

    def _commit(self, pending: collections.deque[Future[ManifestEntry]], keep: int) -> None:
        """Append the manifest lines of the oldest files, in order, until ``keep`` remain in
        flight; after a failure only wait for them."""
        while len(pending) > keep:
            fut = pending.popleft()
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

    def submit(self, items: list[tuple[str, int | None, int, np.ndarray]]) -> None:
        self._check()
        self._queue.put(items)

    def close(self) -> None:
        """Wait until everything queued is written; raise the thread's error if any."""
        self._queue.put(self._STOP)
        self._thread.join()
        if self._pool is not None:
            self._pool.shutdown()
        self._check()
