"""The run folder while one writer owns it: created and locked, checked to hold this run (or
nothing), cleared on ``overwrite``, rid of an interrupted run's temporaries, and given this
run's identity (``run.json``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import orjson

from ..errors import StoreError
from .atomic import TMP_MARK, atomic_write_bytes, disk_error
from .lock import LOCK, RunLock
from .manifest import RUN_JSON
from .refusal import refusal
from .runinfo import read_run_json

log = logging.getLogger(__name__)


class RunFolder:
    """``claim`` creates and locks the folder, ``check`` makes it hold the run a description
    identifies by its fingerprint (or nothing yet), ``write_info`` stores that run's
    ``run.json``, ``release`` unlocks it."""

    def __init__(self, root: Path, overwrite: bool = False) -> None:
        self.root = root
        self.overwrite = overwrite
        self.lock = RunLock(root)

    def claim(self) -> None:
        """Create the folder if needed and take its lock (one writer at a time)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, self.root) from exc
        self.lock.acquire()

    def check(self, info: dict[str, Any]) -> None:
        """Keep the folder's contents when they are the run ``info`` describes (a resume),
        refuse another run, saying which part of its identity differs, or foreign contents
        (or remove them with ``overwrite``); then remove the temporaries an interrupted write
        left."""
        existing = self._existing_info()
        if existing is not None and existing.get("fingerprint") != info["fingerprint"]:
            if not self.overwrite:
                raise StoreError(refusal(self.root, existing, info))
            self._clear()
        elif existing is None and not self._is_empty():
            if not self.overwrite:
                raise StoreError(
                    f"{self.root} is not empty and holds no Passage run; choose an empty or new "
                    "--out folder, or pass --overwrite to replace its contents"
                )
            self._clear()
        elif existing is not None and self.overwrite:
            self._clear()
        self._clean_temporaries()

    def write_info(self, info: dict[str, Any]) -> None:
        """Store ``info`` as ``run.json`` (whole, by rename)."""
        atomic_write_bytes(self.root / RUN_JSON, orjson.dumps(info, option=orjson.OPT_INDENT_2))

    def release(self) -> None:
        self.lock.release()

    def _existing_info(self) -> dict[str, Any] | None:
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
