"""Spread per-pattern drawing over a process pool sized to the cores and to the work.

Workers are started with ``spawn`` (safe when the parent imported TensorFlow) and open the run
once each; the work is cut into contiguous pieces of patterns so a progress bar moves and every
worker stays busy. The pool's size follows the pages to draw (patterns x pages per pattern),
not the patterns: 8 patterns of a CNN with 18 pages each are 144 pages. Work that comes in
lanes (render's page groups: each worker then builds only its own pages' layouts, the
costly part of a CNN's first pages) gets one executor per lane, so a lane's pieces stay in
its own processes. A failure (``--strict``) cancels what is still queued.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed
from contextlib import ExitStack
from pathlib import Path

from tqdm.auto import tqdm

from ..executors import LOCAL, WorkerPool
from ..store import Run
from ..store.cached import cached_run
from . import layout
from .cells import DrawReport

# Below this many pages a pool costs more (worker start-up) than it saves.
POOL_MIN_PAGES = 24

PieceFn = Callable[[Run, list[int]], DrawReport]
LaneFn = Callable[[int], list[PieceFn]]  # workers -> one piece function per lane


def _in_worker(run_path: str, fn: PieceFn, piece: list[int]) -> DrawReport:
    return fn(cached_run(run_path), piece)


def resolve_workers(
    workers: int, n_patterns: int, per_pattern: int = 1, min_pages: int = POOL_MIN_PAGES
) -> int:
    """``workers`` if set, else one per core when there are enough pages (``n_patterns`` x
    ``per_pattern``) to pay for a pool: one worker per ``min_pages // 3`` pages, and never
    more workers than patterns (a pattern is the smallest piece of work)."""
    if workers > 0:
        return workers
    pages = n_patterns * max(per_pattern, 1)
    if pages < min_pages:
        return 1
    by_pages = pages // max(1, min_pages // 3)
    return max(1, min(os.cpu_count() or 1, by_pages, n_patterns))


def run_pieces(
    run: Run,
    fn: PieceFn,
    patterns: Sequence[int],
    workers: int,
    desc: str,
    quiet: bool = False,
    max_piece: int = 64,
    min_pages: int = POOL_MIN_PAGES,
    per_pattern: int = 1,
    pool: WorkerPool | None = None,
    lanes: LaneFn | None = None,
) -> DrawReport:
    """``fn(run, piece)`` over pieces of ``patterns`` (``per_pattern`` pages each),
    in-process, in a local process pool or on a cluster (``pool``); reports merged.
    ``lanes``: given the local pool's size, functions that each do a part of every pattern
    (their work together is ``fn``'s); each lane runs on its own share of the processes.

    ``fn`` must be picklable (a module-level function, or a ``functools.partial`` of one)."""
    total = DrawReport()
    pool = pool or LOCAL
    if pool.remote:
        n_workers = pool.workers(workers)
    else:
        n_workers = resolve_workers(workers, len(patterns), per_pattern, min_pages)
    pieces = layout.split_work(patterns, n_workers * 4, max_size=max_piece)
    bar = tqdm(total=len(patterns), unit="pattern", desc=desc, disable=quiet, dynamic_ncols=True)
    try:
        if n_workers == 1 and not pool.remote:
            for piece in pieces:
                total.merge(fn(run, piece))
                bar.update(len(piece))
            return total
        run_path = str(Path(run.path).resolve())
        fns = [fn] if lanes is None or pool.remote else lanes(n_workers)
        shares = [n_workers // len(fns) + (i < n_workers % len(fns)) for i in range(len(fns))]
        with ExitStack() as stack:
            futures: dict[Future[DrawReport], float] = {}
            for lane_fn, share in zip(fns, shares, strict=True):
                ex = stack.enter_context(pool.executor(share))
                for p in layout.split_work(patterns, share * 4, max_size=max_piece):
                    futures[ex.submit(_in_worker, run_path, lane_fn, p)] = len(p) / len(fns)
            try:
                for fut in as_completed(futures):
                    total.merge(fut.result())
                    bar.update(futures[fut])
            except BaseException:
                for fut in futures:  # --strict: stop early
                    fut.cancel()
                raise
    finally:
        bar.close()
    return total
