"""The data files of one run: each (epoch, layer, chunk) array is named, prepared in a pool
buffer (``prepare``: bytes, CRC-32 and statistics) and written into place under a temporary
name, then renamed (``store``), which gives its manifest entry. Appending that entry to the
manifest is the writer's job, once the file is complete."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from . import codecs, naming
from .atomic import disk_error, remove_temporary, temporary
from .direct_io import BufferPool, FileWriter
from .manifest import ManifestEntry
from .prepare import Encoded, encode

POOL_BUDGET = 64 << 20  # prepared-file buffers of a writer used directly (QueuedWriter raises it)


@dataclass
class Pending:
    """A data file prepared (or being prepared) and not yet written."""

    layer: str
    epoch: int | None
    first: int
    rel: str
    encoded: Encoded


def layer_folders(layers: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Layer name -> its folder under ``data/<epoch>/``, from the run's layer records; a
    folder name that could leave the run is refused."""
    return _safe({rec["name"]: rec["dir"] for rec in layers}, "layer")


def input_folders(inputs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Stored input key (``input:<name>``) -> its folder under ``data/inputs/<epoch>/``, from
    the run's ``stored_inputs`` records; a folder name that could leave the run is refused."""
    return _safe({naming.input_key(rec["name"]): rec["dir"] for rec in inputs}, "input")


def _safe(folders: dict[str, str], what: str) -> dict[str, str]:
    for name, folder in folders.items():
        if not isinstance(folder, str) or not naming.is_safe_dir(folder):
            raise StoreError(
                f"{what} {name!r}: expected a plain {what} folder name such as "
                f"'003-dense', received {folder!r}; it must stay inside the run"
            )
    return folders


class DataFiles:
    """Prepares and writes the data files of the run in ``root``, in format ``fmt``, floats
    stored as ``dtype``: layers into ``folders`` (name -> folder), stored model inputs into
    ``inputs`` (key ``input:<name>`` -> folder). ``prepare`` and ``store`` are safe on several
    threads (distinct files)."""

    def __init__(
        self,
        root: Path,
        folders: dict[str, str],
        fmt: str,
        dtype: np.dtype,
        files: FileWriter,
        inputs: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.folders = folders
        self.inputs = inputs or {}
        self.fmt = fmt
        self.dtype = dtype
        self.files = files
        self.pool = BufferPool(POOL_BUDGET)
        self._made: set[Path] = set()

    def forget_folders(self) -> None:
        """Make folders again as files need them: the run folder may have been removed and
        begun again (``--overwrite``) since this writer last wrote into it."""
        self._made.clear()

    def write(self, layer: str, epoch: int | None, first: int, arr: np.ndarray) -> ManifestEntry:
        """Prepare and write one file on this thread; its manifest entry."""
        pending = self.prepare(layer, epoch, first, arr)
        try:
            pending.encoded.run(0, pending.encoded.work)
        except BaseException:
            self.discard(pending)  # the buffer goes back even when filling fails
            raise
        return self.store(pending)

    def prepare(self, layer: str, epoch: int | None, first: int, arr: np.ndarray) -> Pending:
        """Start one data file: its name, header and buffer. Its element ranges are then
        filled with ``pending.encoded.run`` (on any threads), and ``store`` writes it."""
        if layer in self.inputs:
            rel = naming.input_path(self.inputs[layer], epoch, first, self.fmt)
        else:
            rel = naming.data_path(self.folders[layer], epoch, first, self.fmt)
        return Pending(layer, epoch, int(first), rel, encode(self.fmt, arr, self.dtype, self.pool))

    def store(self, pending: Pending) -> ManifestEntry:
        """Write a prepared file into place (temporary name, then rename) and give its buffer
        back; its manifest entry, for the writer to append."""
        enc = pending.encoded
        final = self.root / pending.rel
        folder = final.parent
        tmp = temporary(final)
        try:
            crc, (lo, hi, bad) = enc.finish()
            if folder not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(folder)
            self.files.write_prepared(tmp, enc.data, enc.size)
            os.replace(tmp, final)
        except OSError as exc:
            remove_temporary(tmp)
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
