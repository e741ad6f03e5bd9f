"""Spread per-pattern drawing over a process pool sized to the cores.

Workers are started with ``spawn`` (safe when the parent imported TensorFlow) and open the run
once each; the work is cut into contiguous pieces of patterns so a progress bar moves and every
worker stays busy. A failure (``--strict``) cancels what is still queued.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm.auto import tqdm

from ..store import Run, open_run
from . import layout
from .grids import DrawReport

# Below this many patterns a pool costs more (worker start-up) than it saves.
POOL_MIN_PATTERNS = 24

PieceFn = Callable[[Run, list[int]], DrawReport]

_RUNS: dict[str, Run] = {}


def _in_worker(run_path: str, fn: PieceFn, piece: list[int]) -> DrawReport:
    run = _RUNS.get(run_path)
    if run is None:
        run = _RUNS[run_path] = open_run(run_path)
    return fn(run, piece)


def resolve_workers(workers: int, n_patterns: int, min_patterns: int = POOL_MIN_PATTERNS) -> int:
    """``workers`` if set, else one per core when there is enough work to pay for a pool."""
    if workers > 0:
        return workers
    if n_patterns < min_patterns:
        return 1
    return max(1, min(os.cpu_count() or 1, n_patterns // max(1, min_patterns // 3)))


def run_pieces(
    run: Run,
    fn: PieceFn,
    patterns: Sequence[int],
    workers: int,
    desc: str,
    quiet: bool = False,
    max_piece: int = 64,
    min_patterns: int = POOL_MIN_PATTERNS,
) -> DrawReport:
    """``fn(run, piece)`` over pieces of ``patterns``, in-process or in a pool; reports merged.

    ``fn`` must be picklable (a module-level function, or a ``functools.partial`` of one)."""
    total = DrawReport()
    n_workers = resolve_workers(workers, len(patterns), min_patterns)
    pieces = layout.split_work(patterns, n_workers * 4, max_size=max_piece)
    bar = tqdm(total=len(patterns), unit="pattern", desc=desc, disable=quiet, dynamic_ncols=True)
    try:
        if n_workers == 1:
            for piece in pieces:
                total.merge(fn(run, piece))
                bar.update(len(piece))
            return total
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            futures = {pool.submit(_in_worker, str(run.path), fn, p): len(p) for p in pieces}
            try:
                for fut in as_completed(futures):
                    total.merge(fut.result())
                    bar.update(futures[fut])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # --strict: stop early
                raise
    finally:
        bar.close()
    return total
