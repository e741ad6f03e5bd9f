"""Where a stage's parallel work runs: a spawn-started process pool on this machine (the
default), or a Dask cluster (``pipeline.distributed.DaskPool``, given by ``--dask``).

Render and analyze cut their work into picklable pieces and hand them to a ``WorkerPool``;
they never import Dask. A remote pool is used even for one piece (the user asked for the
cluster), and its workers may sit on other machines: paths handed to them are absolute.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Protocol


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
