"""An append-only JSON-lines file of the run (``manifest.jsonl``, ``metrics.jsonl``): each line
is written whole and flushed (and synced to the disk when ``durable``) before ``append``
returns; a write the disk refuses becomes ``disk_error``'s error."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import StoreError
from .atomic import disk_error

log = logging.getLogger(__name__)


class LineFile:
    """``open`` (for appending), ``append`` lines, ``close``; opening again appends again."""

    def __init__(self, path: Path, durable: bool = False) -> None:
        self.path = path
        self.durable = durable
        self._fh: BinaryIO | None = None

    @property
    def opened(self) -> bool:
        return self._fh is not None

    def open(self) -> None:
        try:
            self._fh = self.path.open("ab")
        except OSError as exc:
            raise disk_error(exc, self.path) from exc

    def append(self, line: bytes) -> None:
        """Append one complete line (``line`` ends with a newline)."""
        if self._fh is None:
            raise StoreError(
                f"cannot append to {self.path}: expected it open for writing, received a closed "
                "file; open the writer (RunWriter.open or a with block) before writing"
            )
        try:
            self._fh.write(line)
            self._fh.flush()
            if self.durable:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            raise disk_error(exc, self.path) from exc

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:  # pragma: no cover - close of an append-only file
                log.warning("closing %s: %s", self.path, exc)
        self._fh = None
