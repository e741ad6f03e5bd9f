"""The runs a viewer shows, kept in step with their manifests while they grow.

``LiveRuns(paths)`` opens every run once; ``state(i)`` stats ``RUN/manifest.jsonl`` and, when
its size or mtime changed (a capture or a training still writing), opens the run again. A
request takes one ``RunState`` and keeps it: a reload swaps the whole object, so a request
never sees half of an old manifest and half of a new one. The facts the page polls for
(``runinfo``) are computed once per manifest version.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedDataError, NotInRunError
from ..store import MANIFEST, ManifestEntry, Run, open_run
from ..store.analysis_files import folder as analysis_folder

BACKGROUND_CHECK_BYTES = 4 << 20  # larger files are served first, their CRC-32 checked after
CHECK_AFTER_IDLE_S = 0.2  # a background check starts once no large file was read for this long


def _background_priority() -> None:
    """The checksum thread yields the cores to the requests and the browser (Linux: a thread
    has its own nice value); elsewhere it keeps the process's priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


log = logging.getLogger(__name__)


def manifest_version(path: Path) -> str:
    """``"<size>-<mtime_ns>"`` of ``RUN/manifest.jsonl`` (``"0-0"`` before its first line)."""
    try:
        st = os.stat(path / MANIFEST)
    except OSError:
        return "0-0"
    return f"{st.st_size}-{st.st_mtime_ns}"


def ready_prefix(run: Run) -> int:
    """How many patterns, counted from 0, every layer holds at the run's last epoch."""
    epochs = run.epochs
    if not epochs or not run.layers:
        return 0
    ready = run.num_patterns
    for layer in run.layers:
        end = 0
        for entry in run.chunks(layer, epochs[-1]):
            if entry.first > end:
                break
            end = max(end, entry.first + entry.count)
        ready = min(ready, end)
    return ready


def value_range(entries: list[ManifestEntry]) -> tuple[float, float]:
    """The finite (min, max) the manifest records over ``entries``; NaN when none."""
    lows = [e.min for e in entries if e.min is not None and np.isfinite(e.min)]
    highs = [e.max for e in entries if e.max is not None and np.isfinite(e.max)]
    return (min(lows) if lows else float("nan"), max(highs) if highs else float("nan"))


@dataclass
class RunState:
    """One run at one manifest version."""

    index: int
    run: Run
    version: str
    _info: dict[str, Any] | None = None
    _ranges: dict[tuple[str, int | None], tuple[float, float]] = field(default_factory=dict)

    def runinfo(self) -> dict[str, Any]:
        """The RUNINFO record of the viewer's contract (``/api/runs``)."""
        if self._info is None:
            run = self.run
            self._info = {
                "id": self.index,
                "name": run.path.resolve().name,
                "mode": "train" if run.is_training else "batch",
                "layers": [
                    {"name": r.name, "class": r.class_name, "shape": list(r.shape), "dir": r.dir}
                    for r in run.layer_records
                ],
                "inputs": run.inputs,
                "num_patterns": run.num_patterns,
                "patterns_ready": ready_prefix(run),
                "epochs": run.epochs,
                "has_analysis": analysis_folder(run.path).is_dir(),
                "has_model": (run.path / "model.png").is_file(),
                "has_metrics": bool(run.is_training and run.metrics()),
                "features": run.feature_layers,  # layers with unit pages (passage visualize)
                "version": self.version,
            }
        return self._info

    def layer_range(self, key: str, epoch: int | None) -> tuple[float, float]:
        """The manifest's finite range of layer (or input key) ``key`` at ``epoch``."""
        if (key, epoch) not in self._ranges:
            self._ranges[(key, epoch)] = value_range(self.run.chunks(key, epoch))
        return self._ranges[(key, epoch)]


class LiveRuns:
    """The viewer's runs by position, each reopened when its manifest changes."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._lock = threading.Lock()
        self._states = [self._open(i) for i in range(len(self.paths))]
        # data files whose checksum was compared with the manifest: entry -> None when good,
        # else (manifest version, error): damage is believed until the manifest changes
        self._checked: dict[ManifestEntry, tuple[str, DamagedDataError] | None] = {}
        self._pending: set[ManifestEntry] = set()
        self._last_read = 0.0
        self._closing = False
        self._checker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="passage-check", initializer=_background_priority
        )

    def __len__(self) -> int:
        return len(self.paths)

    def _open(self, index: int) -> RunState:
        path = self.paths[index]
        version = manifest_version(path)  # before reading: a line landing meanwhile reloads
        return RunState(index, open_run(path), version)

    def state(self, index: int) -> RunState:
        """Run ``index`` as its manifest is now; ``NotInRunError`` for an unknown index."""
        if not 0 <= index < len(self.paths):
            raise NotInRunError(
                f"run {index} is not served; expected a run id from 0 to {len(self.paths) - 1}"
            )
        current = self._states[index]
        if manifest_version(current.run.path) == current.version:
            return current
        with self._lock:
            current = self._states[index]
            if manifest_version(current.run.path) != current.version:
                log.debug("run %s: manifest changed, reading it again", current.run.path)
                current = self._states[index] = self._open(index)
        return current

    def load(self, state: RunState, entry: ManifestEntry) -> np.ndarray:
        """The memory-mapped array of one data file, its checksum compared with the manifest
        (``DamagedDataError`` when it differs, again until the manifest changes: a capture run
        again may write the file anew).

        A file up to ``BACKGROUND_CHECK_BYTES`` is checked before it is served. A larger one
        (a 30 MB chunk of 2,048 patterns, to show one pattern) is served as soon as its size,
        shape and dtype match the manifest, and its CRC-32 is compared in a background
        thread: a flipped bit in it is reported from the moment that check ends.
        """
        if entry in self._checked:
            known = self._checked[entry]
            if known is None:
                return state.run.load(entry, check=False)
            if known[0] == state.version:
                raise known[1]
        if entry.bytes > BACKGROUND_CHECK_BYTES:
            return self._load_then_check(state, entry)
        try:
            arr = state.run.load(entry, check=True)
        except DamagedDataError as exc:
            self._checked[entry] = (state.version, exc)
            raise
        self._checked[entry] = None
        return arr

    def _load_then_check(self, state: RunState, entry: ManifestEntry) -> np.ndarray:
        path = state.run.path / entry.path
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != entry.bytes:  # missing or truncated: the full check says which, at once
            try:
                state.run.load(entry, check=True)
            except DamagedDataError as exc:
                self._checked[entry] = (state.version, exc)
                raise
        arr = state.run.load(entry, check=False)
        self._last_read = time.monotonic()
        with self._lock:
            if entry not in self._pending:
                self._pending.add(entry)
                self._checker.submit(self._check, state, entry)
        return arr

    def _check(self, state: RunState, entry: ManifestEntry) -> None:
        # interactive requests first: a whole-file checksum waits for a pause in the reads
        while time.monotonic() - self._last_read < CHECK_AFTER_IDLE_S and not self._closing:
            time.sleep(CHECK_AFTER_IDLE_S / 4)
        try:
            state.run.load(entry, check=True)
            self._checked[entry] = None
        except DamagedDataError as exc:
            log.warning("%s", exc)
            self._checked[entry] = (state.version, exc)
        finally:
            with self._lock:
                self._pending.discard(entry)

    def close(self) -> None:
        """Stop the background checks (waits for the one running)."""
        self._closing = True
        self._checker.shutdown(wait=True, cancel_futures=True)
