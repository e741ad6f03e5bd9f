"""The work a worker process does: reduce one piece of a layer and keep its partial result.

Runs in the analyze pool (or in the calling process with one worker), beside the CKA ranges
of ``cka_tasks`` (``cka_tasks.run_task`` runs either). Each data file is read
checked against its manifest line (size and CRC-32) and reduced at once, so memory holds one
file at a time. The partial result is written to ``analysis/.partial/`` before the worker
answers: an analysis killed at any moment resumes from the pieces already kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import Run
from ..store import analysis_files as files
from ..store.cached import cached_run
from .partial import Chunk
from .pieces import LayerJob, Piece
from .reductions import LayerReduction


@dataclass(frozen=True)
class Settings:
    """How every layer is reduced: top K, and the class of each pattern (or None)."""

    k: int = 9
    labels: np.ndarray | None = None
    classes: np.ndarray | None = None
    fused: bool | None = None  # the compiled statistics pass (kernel.plan); None: by position


def partial_path(run_path: str | Path, piece: Piece) -> Path:
    return files.folder(Path(run_path)) / files.PARTIAL / f"{piece.key}.npz"


def new_reduction(job: LayerJob, settings: Settings) -> LayerReduction:
    return LayerReduction(
        job.shape, job.lo, job.hi, settings.k, settings.classes, fused=settings.fused
    )


def reduce_piece(
    run_path: str, job: LayerJob, piece: Piece, settings: Settings, run: Run | None = None
) -> str:
    """Reduce ``piece`` (a DamagedDataError names a bad file) and keep its partial result;
    returns the partial file's path. ``run``: the caller's reader (in-process analysis, so
    every analysis checks its files again); None in a pool worker."""
    run = run if run is not None else cached_run(run_path)
    red = new_reduction(job, settings)
    for entry in piece.entries:
        arr = run.load(entry, check=True)
        rows = min(entry.count, piece.stop - entry.first)
        labels = None
        if settings.labels is not None:
            labels = settings.labels[entry.first : entry.first + rows]
        red.add(Chunk(arr[:rows], entry.first, labels, clean=entry.nonfinite == 0))
        del arr
    path = partial_path(run_path, piece)
    files.write_arrays(path, red.state())
    return str(path)


def read_rows(run: Run, layer: str, epoch: int | None, first: int, stop: int) -> np.ndarray:
    """Patterns ``first .. stop - 1`` of one layer at one epoch (files read checked)."""
    parts = []
    for entry in run.chunks(layer, epoch):
        a, b = max(first, entry.first), min(stop, entry.first + entry.count)
        if a < b:
            arr = run.load(entry, check=True)
            parts.append(np.array(arr[a - entry.first : b - entry.first]))
    if not parts:
        raise ValueError(f"no data of layer {layer!r} for patterns {first}..{stop - 1}")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
