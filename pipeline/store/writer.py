"""Write a run: data files (temp name + rename), then their manifest line, never the reverse.

``RunWriter`` owns the run folder while it writes (``RunFolder``: lock, identity check),
resumes from what the manifest already holds (``resume``), writes data files (``DataFiles``)
and appends their manifest lines (``LineFile``); a full or read-only disk becomes one clear
error that leaves the store consistent. ``QueuedWriter`` (queued.py) runs it behind a bounded
queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import StoreError
from . import codecs
from .chunk_files import DataFiles, input_folders, layer_folders
from .direct_io import BufferPool, FileWriter
from .jsonl import LineFile
from .manifest import MANIFEST, METRICS, SCHEMA_VERSION, ManifestEntry
from .resume import Key, resume
from .run_folder import RunFolder


class RunWriter:
    """Owns one run directory while writing into it.

    ``info`` is the run description stored as ``run.json``; it must hold ``fingerprint`` (what
    makes two captures the same run) and ``layers`` (records with ``name`` and ``dir``); with
    ``stored_inputs`` (records likewise) the model inputs are written as ``input:<name>``.
    ``done`` holds the manifest entries of the files complete so far, by key.
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
        self.dtype = np.dtype(dtype)
        files = FileWriter(direct=direct_io, durable=durable)
        self.data = DataFiles(
            self.root,
            layer_folders(self.info["layers"]),
            fmt,
            self.dtype,
            files,
            input_folders(self.info.get("stored_inputs") or []),
        )
        self.folder = RunFolder(self.root, overwrite)
        self.manifest = LineFile(self.root / MANIFEST, durable)
        self.metrics = LineFile(self.root / METRICS, durable)
        self.done: dict[Key, ManifestEntry] = {}

    @property
    def pool(self) -> BufferPool:
        """The buffers data files are prepared in (``QueuedWriter`` raises its budget)."""
        return self.data.pool

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> RunWriter:
        """Take the folder (lock), check it holds this run or nothing, resume from its
        manifest, write ``run.json`` and open the manifest for appending."""
        self.folder.claim()
        try:
            self.folder.check(self.info)
            self.done = resume(self.root)
            self.info.setdefault("schema_version", SCHEMA_VERSION)
            self.info["format"] = self.fmt
            self.info["dtype"] = self.dtype.name
            self.folder.write_info(self.info)
            self.manifest.open()
        except BaseException:
            self.folder.release()
            raise
        return self

    def close(self) -> None:
        self.manifest.close()
        self.metrics.close()
        self.folder.release()

    def __enter__(self) -> RunWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    def has(self, layer: str, epoch: int | None, first: int) -> bool:
        return (epoch, layer, first) in self.done

    def write(self, layer: str, epoch: int | None, first: int, arr: np.ndarray) -> ManifestEntry:
        """Write one (epoch, layer, chunk) file and append its manifest line."""
        return self.commit(self.data.write(layer, epoch, first, arr))

    def commit(self, entry: ManifestEntry) -> ManifestEntry:
        """Append the manifest line of a file that ``DataFiles.store`` completed."""
        self.manifest.append(entry.to_json_line())
        self.done[entry.key] = entry
        return entry

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (training mode)."""
        if not self.metrics.opened:
            self.metrics.open()
        self.metrics.append(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
