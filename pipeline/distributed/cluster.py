"""A Dask client for one command: connect to a running scheduler or start a ``LocalCluster``,
and turn the cluster's failures into one clear ``DistributedError``.

``connect(address)`` yields a ``DaskPool``: the ``WorkerPool`` render and analyze hand their
pieces to, and the client the distributed capture submits its batches with.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

from ..errors import DistributedError, PassageError
from .address import Address, parse_address

log = logging.getLogger(__name__)

# Exceptions by which a client learns that its scheduler is gone.
LOST = (OSError, TimeoutError, asyncio.TimeoutError, concurrent.futures.CancelledError)


class DaskPool:
    """A Dask cluster as a ``pipeline.executors.WorkerPool``."""

    remote = True

    def __init__(self, client: Any, address: Address) -> None:
        self.client = client
        self.address = address

    def threads(self) -> int:
        """Tasks the cluster runs at once: its workers' threads."""
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def workers(self, wanted: int) -> int:
        return wanted if wanted > 0 else self.threads()

    def executor(self, n: int) -> Executor:
        return self.client.get_executor(pure=False)

    def lost(self, exc: BaseException) -> DistributedError:
        """The one error for a scheduler that stopped answering in the middle of work."""
        return DistributedError(
            f"lost the Dask scheduler at {self.address} ({first_line(exc)}); what was written "
            "is complete (the manifest lists only whole files): rerun the same command to "
            "resume, with --dask or without"
        )

    def failed(self, exc: Exception) -> Exception:
        """What to raise for ``exc`` out of work on the cluster: the lost scheduler, or one
        line for the cluster's own errors (a task that killed its workers: ``KilledWorker``);
        any other error as it is."""
        if self.client.status != "running":
            return self.lost(exc)
        if _dask_error(exc):
            return DistributedError(
                f"the Dask cluster at {self.address} failed the work ({first_line(exc)}); what "
                "was written is complete: rerun the same command to resume"
            )
        return exc


def _dask_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("distributed", "dask")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: message`` of ``exc`` on one line, at most ``limit`` characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Dask's own loggers say nothing below CRITICAL while Passage reports (one line per
    error), unless Passage logs at debug level (-v)."""
    if logging.getLogger("pipeline").isEnabledFor(logging.DEBUG):
        yield
        return
    names = [
        name
        for name in ("distributed", "dask", *logging.root.manager.loggerDict)
        if name.split(".")[0] in ("distributed", "dask")
    ]
    loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map and
# unmap every large array afresh: a capture's batches then cost ~30 % more CPU in page faults
# (measured here: --dask local:2 / in-process 1.27-1.58 with it, 1.06-1.13 without).
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
TRIM_ENV = "MALLOC_TRIM_THRESHOLD_"


def trim_threshold() -> str | None:
    """This process's ``MALLOC_TRIM_THRESHOLD_`` (run on each worker by ``Client.run``)."""
    return os.environ.get(TRIM_ENV)


def _hint_trim(client: Any) -> None:
    try:
        values = client.run(trim_threshold)
    except Exception:  # noqa: BLE001 - a hint only: a worker that cannot answer is no error
        return
    trimmed = sorted(w for w, v in values.items() if v)
    if trimmed:
        log.info(
            "%d Dask worker(s) run with %s set (Dask's default), which makes captures slower "
            "(large arrays are mapped afresh each batch); start them with it unset: see "
            "docs/distributed.md",
            len(trimmed),
            TRIM_ENV,
        )


@contextlib.contextmanager
def connect(address: str | Address, timeout: float = 10.0) -> Iterator[DaskPool]:
    """A client of the scheduler at ``address`` (or of a ``LocalCluster`` started here and
    stopped on leaving), waiting up to ``timeout`` seconds for it and for one worker."""
    addr = address if isinstance(address, Address) else parse_address(address)
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise DistributedError(
            f"a Dask cluster needs the `distributed` package ({exc}); pip install distributed"
        ) from exc
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_dask())
        if addr.local:
            log.info("starting a local Dask cluster of %d worker process(es)", addr.workers)
            stack.enter_context(dask.config.set({TRIM_KEY: None}))
            cluster = LocalCluster(
                n_workers=addr.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster, timeout=timeout))
        else:
            try:
                client = Client(addr.url, timeout=timeout)
            except (*LOST, ValueError) as exc:
                raise DistributedError(
                    f"cannot reach a Dask scheduler at {addr.url} within {timeout:g} s "
                    f"({type(exc).__name__}); start one with `dask scheduler` (it prints its "
                    "address) and workers with `dask worker ADDRESS`, or use --dask local:N"
                ) from None
            stack.enter_context(client)
            try:
                client.wait_for_workers(1, timeout=timeout)
            except (*LOST, ValueError) as exc:
                raise DistributedError(
                    f"the Dask scheduler at {addr.url} has no workers after {timeout:g} s "
                    f"({type(exc).__name__}); start some with `dask worker {addr.url}`"
                ) from None
        pool = DaskPool(client, addr)
        log.info("Dask cluster %s: %d worker thread(s)", addr, pool.threads())
        _hint_trim(client)
        try:
            yield pool
        except PassageError:
            raise
        except Exception as exc:
            error = pool.failed(exc)
            if error is exc:
                raise
            raise error from None
