"""Where a stage's parallel work runs: a spawn-started process pool on this machine (the
default), or a Dask cluster (``pipeline.distributed.DaskPool``, given by ``--dask``).

Render and analyze cut their work into picklable pieces and hand them to a ``WorkerPool``;
they never import Dask. A remote pool is used even for one piece (the user asked for the
cluster), and its workers may sit on other machines: paths handed to them are absolute.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class WorkerPool(Protocol):
    """Processes that run picklable module-level functions."""

    remote: bool  # True: a cluster, used whatever the size of the work

    def workers(self, wanted: int) -> int:
        """How many pieces run at once, for ``wanted`` (the stage's own count, 0 = auto)."""
        ...

    def executor(self, n: int) -> Executor:
        """An executor (a context manager) that runs up to ``n`` pieces at once."""
        ...


class LocalPool:
    """Up to ``n`` spawn-started processes on this machine (safe beside TensorFlow)."""

    remote = False

    def workers(self, wanted: int) -> int:
        return wanted

    def executor(self, n: int) -> Executor:
        return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


LOCAL = LocalPool()


def run_each(
    pool: WorkerPool,
    n: int,
    items: Sequence[T],
    task: Callable[..., object],
    args: Callable[[T], tuple[object, ...]],
    done: Callable[[T, BaseException | None], None],
    expected: tuple[type[BaseException], ...],
    here: Callable[[T], object] | None = None,
) -> None:
    """Run ``task(*args(item))`` for every item: one after another in this process when
    ``n <= 1`` on a local pool (``here(item)`` instead, when given: e.g. with a reader the
    caller already holds), else ``n`` at once on ``pool``. ``done(item, error)`` follows each
    item in order, ``error`` an ``expected`` exception or None; any other exception
    propagates, and the items not started are cancelled."""
    if n <= 1 and not pool.remote:
        for item in items:
            try:
                here(item) if here is not None else task(*args(item))
            except expected as exc:
                done(item, exc)
                continue
            done(item, None)
        return
    with pool.executor(n) as ex:
        futures = [(item, ex.submit(task, *args(item))) for item in items]
        try:
            for item, fut in futures:
                error = fut.exception()
                if error is not None and not isinstance(error, expected):
                    raise error
                done(item, error)
        except BaseException:
            for _, fut in futures:
                fut.cancel()
            raise


def local_workers(wanted: int, tasks: int, total_bytes: int, min_bytes: int) -> int:
    """How many processes a stage starts here: ``wanted`` (at most one per task) when given,
    else one per core (at most one per task), or 1 below ``min_bytes`` of data, where starting
    a pool costs more than it saves."""
    if wanted > 0:
        return min(wanted, max(1, tasks))
    if total_bytes < min_bytes:
        return 1
    return max(1, min(os.cpu_count() or 1, tasks))
