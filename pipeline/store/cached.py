"""A run opened once per worker process: pool and cluster workers draw or reduce many pieces
of one run, and a reader per piece would parse the manifest again each time."""

from __future__ import annotations

from pathlib import Path

from .manifest import MANIFEST
from .reader import Run, open_run

_RUNS: dict[str, tuple[tuple[int, int], Run]] = {}


def cached_run(run_path: str) -> Run:
    """The run at ``run_path``, opened once while its manifest stays as it is: a long-lived
    cluster worker sees a run captured again afresh. One run is held at a time, so a worker's
    memory stays bounded."""
    st = (Path(run_path) / MANIFEST).stat()
    state = (st.st_size, st.st_mtime_ns)
    held = _RUNS.get(run_path)
    if held is None or held[0] != state:
        _RUNS.clear()
        held = _RUNS[run_path] = (state, open_run(run_path))
    return held[1]
