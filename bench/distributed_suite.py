"""Distributed figures: a capture on a Dask ``LocalCluster`` of two worker processes against
the same capture in this process, and what one Dask task costs.

This machine has two cores, so ``--dask local:2`` gains no compute: the ratio measures the
engine's overhead (scheduling, results coming back, two processes sharing the cores instead of
one pipelined process). The warm ratio runs on a cluster already started whose workers have
built the model (a running scheduler's usual state); the cold one times both whole commands,
interpreter, cluster start and the workers' TensorFlow import and model build included."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from pathlib import Path

from pipeline.capturing.pending import Pending
from pipeline.capturing.stream import capture
from pipeline.config import Config, DaskConfig
from pipeline.distributed import capture as capture_on
from pipeline.distributed import connect
from pipeline.distributed.capture_tasks import cut_tasks

from .common import capture_config, child_env, passage_cmd
from .figures import Figure
from .measure import interleaved, seconds
from .sizes import Sizes

log = logging.getLogger(__name__)

OVERHEAD_BATCH = 32  # patterns per batch of the task-overhead figure: many small tasks


def distributed_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    n = sizes.distributed
    note = (
        f"builtin:seed over random:{n}, seed rule (29 KiB per pattern), batch size "
        f"{sizes.batch_size or 'by --batch-mb'}; 2 worker processes of 1 thread on this "
        "2-core machine"
    )
    config = capture_config(tmp / "d-run", n, sizes.batch_size)
    with connect("local:2") as pool:

        def local() -> float:
            return _timed(lambda: capture(config, quiet=True), tmp / "d-run")

        def cluster() -> float:
            return _timed(lambda: capture_on(config, pool, quiet=True), tmp / "d-run")

        cluster()  # the workers build the model once
        med = interleaved({"local": local, "dask": cluster}, sizes.repeats)
        figures = [
            Figure(
                "capture --dask local:2 (warm cluster) / in-process capture: time",
                med["local"],
                med["dask"],
                "s",
                med["dask"] / med["local"],
                ("<=", 1.25),
                note=note + f"; medians of {sizes.repeats}, interleaved",
            )
        ]
        figures.append(_task_overhead(pool, sizes, tmp))
    figures.append(_cold(sizes, tmp, note))
    return figures


def _timed(fn, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    elapsed = seconds(fn)
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def _task_overhead(pool, sizes: Sizes, tmp: Path) -> Figure:
    """Milliseconds one extra task costs: the same capture of many small batches as one task
    per batch, then as few tasks (two per worker); the difference over the extra tasks."""
    batches = sizes.overhead_batches
    n = batches * OVERHEAD_BATCH
    base = capture_config(tmp / "o-run", n, OVERHEAD_BATCH)

    def tasks_of(per_task: int) -> Config:
        return dataclasses.replace(base, dask=DaskConfig(batches_per_task=per_task))

    many, few = tasks_of(1), tasks_of(batches)
    todo = [Pending(i * OVERHEAD_BATCH, OVERHEAD_BATCH, frozenset()) for i in range(batches)]
    few_tasks = len(cut_tasks(todo, batches, pool.threads()))  # as DaskRunner cuts them

    def run(cfg: Config) -> float:
        return _timed(lambda: capture_on(cfg, pool, quiet=True), tmp / "o-run")

    run(many)  # the workers build this model
    med = interleaved({"many": lambda: run(many), "few": lambda: run(few)}, sizes.repeats)
    per_batch_many = med["many"] / batches * 1000
    per_batch_few = med["few"] / batches * 1000
    per_task = (med["many"] - med["few"]) / (batches - few_tasks) * 1000
    return Figure(
        "Dask task overhead: ms per batch, one batch per task / a few large tasks",
        per_batch_few,
        per_batch_many,
        "ms",
        per_batch_many / per_batch_few,
        None,
        note=(
            f"{batches} batches of {OVERHEAD_BATCH} patterns (builtin:seed, 0.9 MiB each) as "
            f"{batches} tasks and as {few_tasks}: {per_task:.1f} ms per extra task (scheduling, "
            "the result coming back, a writer started and drained); [dask] batches_per_task = 0 "
            "groups batches into tasks of 128 MiB"
        ),
    )


def _cold(sizes: Sizes, tmp: Path, note: str) -> Figure:
    """Both whole commands, one run each: `passage capture` and `passage capture --dask
    local:2` (interpreter, TensorFlow import, cluster start, per-worker model build)."""
    out = tmp / "c-run"
    args = ["capture", "--patterns", f"random:{sizes.distributed}", "--out", str(out)]
    args += ["--select", "seed", "--no-architecture"]
    if sizes.batch_size:
        args += ["--batch-size", str(sizes.batch_size)]

    def command(*extra: str) -> float:
        shutil.rmtree(out, ignore_errors=True)
        elapsed = seconds(
            lambda: subprocess.run(
                passage_cmd(*args, *extra), env=child_env(), check=True, capture_output=True
            )
        )
        shutil.rmtree(out, ignore_errors=True)
        return elapsed

    here = command()
    there = command("--dask", "local:2")
    return Figure(
        "passage capture --dask local:2 / passage capture, whole commands (cold)",
        here,
        there,
        "s",
        there / here,
        None,
        note=note + "; one run each: the cluster's start and each worker's TensorFlow import "
        "and model build are paid once per command",
    )
