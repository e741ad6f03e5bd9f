"""Batch capture on a Dask cluster: the client settles the run (model, layers, run.json,
lock, architecture) exactly as a local capture does, then hands whole batches to the workers
as tasks; each worker writes its batches' data files into the shared run folder and returns
their manifest entries, which the client appends in pattern order. The manifest therefore
lists a file only once it is complete, a run is valid at every moment, and the result is
the same files and the same manifest as a local capture of the same spec.

Training stays on one machine: ``model.fit`` is not cut into tasks here.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from ..capturing.models import load_model
from ..capturing.patterns.spec import is_generator_spec
from ..capturing.pending import Pending
from ..capturing.stream import CapturePlan, capture_model, pattern_bytes, progress
from ..config import Config
from ..errors import ConfigError
from ..store import Run, RunWriter
from .capture_tasks import WorkerSpec, absolute_spec, batches_per_task, cut_tasks
from .cluster import DaskPool
from .worker import TaskResult, capture_task, warm_up

log = logging.getLogger(__name__)


def capture(config: Config, pool: DaskPool, quiet: bool = False) -> Run:
    """Capture as ``config`` says, its batches run on ``pool``'s workers."""
    check_capture(config)
    c = config.capture
    client = pool.client
    warming = [  # each worker imports TensorFlow while this process loads the model
        client.submit(warm_up, workers=[w], allow_other_workers=False, pure=False)
        for w in client.scheduler_info(n_workers=-1).get("workers", {})
    ]
    try:
        model = load_model(c.model, unsafe=c.unsafe)
        runner = DaskRunner(pool, config.dask.batches_per_task)
        return capture_model(model, config, quiet=quiet, runner=runner)
    finally:
        client.cancel(warming)


def check_capture(config: Config) -> None:
    """Refuse, before any cluster is reached, a capture the workers cannot run: training, and
    patterns made by code only this process can run."""
    c = config.capture
    if config.train is not None:
        raise ConfigError(
            "dask: training runs stay on one machine (model.fit is not cut into tasks); "
            "train without a Dask cluster, or capture the watched patterns in batch mode on it"
        )
    generated = [p.strip() for p in c.patterns.split(",") if is_generator_spec(p.strip())]
    if generated:
        raise ConfigError(
            f"dask: patterns {generated[0]!r} come from a generator, which only this process "
            "can run; expected random:N[:SEED], an .npy/.npz file or an image folder that "
            "every worker can read (save the generator's patterns with np.save first)"
        )


class DaskRunner:
    """A ``stream.BatchRunner`` that runs the batches on a Dask cluster."""

    def __init__(self, pool: DaskPool, per_task: int = 0) -> None:
        self.pool = pool
        self.per_task = per_task

    def __call__(
        self, plan: CapturePlan, writer: RunWriter, todo: list[Pending], quiet: bool
    ) -> None:
        kinds = plan.source.kind.split("+")
        in_memory = str(plan.run.info.get("model", "")).startswith("<in-memory")
        if "array" in kinds or "generator" in kinds or in_memory:
            raise ConfigError(
                "dask: in-memory models and patterns cannot reach the workers; expected "
                "specs every worker can read: model file.keras|module:function|builtin:NAME "
                "and patterns random:N, file.npy, file.npz or an image folder"
            )
        spec = worker_spec(plan, writer)
        per_task = batches_per_task(batch_bytes(plan), self.per_task)
        tasks = cut_tasks(todo, per_task, self.pool.threads())
        client = self.pool.client
        log.info(
            "%d batch(es) as %d task(s) on %d Dask worker thread(s)",
            len(todo),
            len(tasks),
            self.pool.threads(),
        )
        from distributed import as_completed

        futures = [client.submit(capture_task, spec, task, pure=False) for task in tasks]
        done: dict[int, TaskResult] = {}
        following = 0  # the next task whose entries go into the manifest
        workers: Counter[str] = Counter()
        builds = 0
        busy = building = 0.0
        bar = progress(plan.source.count, todo, quiet)
        try:
            for fut in as_completed(futures):
                result: TaskResult = fut.result()
                done[result.index] = result
                workers[result.worker] += 1
                builds += result.built
                busy += result.seconds
                building += result.build_s
                while following in done:
                    for entry in done.pop(following).entries:
                        writer.commit(entry)
                    bar.update(tasks[following].patterns)
                    following += 1
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            bar.close()
        log.info(
            "%d task(s) ran on %d worker process(es) in %.1f s of worker time; the model was "
            "built %d time(s) (%.1f s)",
            len(tasks),
            len(workers),
            busy,
            builds,
            building,
        )


def batch_bytes(plan: CapturePlan) -> int:
    """Bytes a full batch's files hold (0 when an output size is not fixed)."""
    per = pattern_bytes(plan.selected, plan.config.capture.dtype)
    return 0 if per is None else per * plan.batch_size


def worker_spec(plan: CapturePlan, writer: RunWriter) -> WorkerSpec:
    c = plan.config.capture
    cwd = Path(os.getcwd())
    return WorkerSpec(
        model=absolute_spec(c.model, cwd),
        unsafe=c.unsafe,
        patterns=absolute_spec(c.patterns, cwd),
        inputs=tuple(sorted(c.inputs.items())),
        limit=c.limit,
        weights=plan.run.parts["weights"],
        layers=tuple(info.name for info in plan.selected),
        kept=tuple(plan.inputs),
        root=str(writer.root.resolve()),
        fmt=writer.fmt,
        dtype=writer.dtype.name,
        direct_io=c.direct_io,
        durable=c.fsync,
        queue_size=c.queue_size,
        folders=tuple(writer.data.folders.items()),
        input_folders=tuple(writer.data.inputs.items()),
        preprocess=absolute_spec(c.preprocess, cwd) if ":" in c.preprocess else c.preprocess,
        resize=c.resize,
    )
