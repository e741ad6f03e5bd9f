"""``analyze(run, ...)``: every layer's statistics, the CKA matrices, and the pictures (drawn by
``rendering.analysis``).

The run's lock is held for the whole analysis: a run still being captured is refused (its
capture holds the lock), and a capture cannot start while analyze writes. A run whose capture
stopped early is analyzed up to its complete prefix (the patterns every layer holds), with a
warning; analyzing again after the capture finished computes the files again.

Layer statistics are cut into pieces (a few data files of one layer at one epoch) spread over
a process pool; each piece's partial result is kept under ``analysis/.partial/`` so that an
analysis killed at any moment resumes where it was. The CKA files are computed in the same
pool at the same time (``cka_tasks``: pattern ranges whose states are kept the same way and
merged in float64 here), or after the statistics in this process when one worker is used. ``analysis/index.json`` records what each
file was computed from: a rerun skips what is up to date.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, DamagedDataError
from ..executors import LOCAL, WorkerPool, local_workers, run_each
from ..store import Run, open_run
from ..store import analysis_files as files
from ..store.lock import RunLock
from . import cka_tasks, kernel, pieces
from . import labels as labelmod
from .cka_runs import METHODS, epochs_cka, keep
from .cka_tasks import CkaJob
from .pieces import LayerJob, Piece, complete_prefix, digest, layer_job
from .reductions import LayerReduction
from .report import AnalysisReport
from .tasks import Settings, new_reduction, partial_path, reduce_piece

log = logging.getLogger(__name__)

# Below this many bytes of data a process pool costs more (start-up) than it saves.
POOL_MIN_BYTES = 96 << 20


def resolve_epochs(run: Run, epoch: int | str | None) -> list[int | None]:
    """``"all"`` (or None): every recorded epoch; an int: that one (checked)."""
    recorded = run.epochs
    if epoch is None or epoch == "all":
        return recorded
    try:
        wanted = int(epoch)
    except (TypeError, ValueError):
        raise ConfigError(f"epoch: expected an epoch number or 'all', received {epoch!r}") from None
    if wanted not in recorded:
        shown = "none (a batch run)" if recorded == [None] else str(recorded)
        raise ConfigError(f"epoch: {wanted} is not in run {run.path}; recorded: {shown}")
    return [wanted]


def analyze(
    run: str | Path | Run,
    epoch: int | str | None = "all",
    labels: str | Path | None = None,
    against: str | Path | None = None,
    top: int = 9,
    workers: int = 0,
    cka: bool = True,
    pictures: bool = True,
    max_channels: int = 64,
    cmap: str = "viridis",
    quiet: bool = False,
    pool: WorkerPool | None = None,
    cka_method: str = "auto",
) -> AnalysisReport:
    """Analyze a captured run into ``RUN/analysis/`` (see the module docstring). ``pool``:
    where the pieces are reduced (default: processes here; ``pipeline.distributed`` for a
    cluster, whose workers must see the run at the same path). ``cka_method``: ``auto``
    (exact while its state fits ``cka.MAX_STATE_BYTES``, see ``cka_runs.method``),
    ``exact`` or ``sketch``."""
    if top < 1:
        raise ConfigError(f"top: expected K >= 1 patterns per channel, received {top}")
    run = run if isinstance(run, Run) else open_run(run)  # a clear error before any lock file
    lock = RunLock(run.path)
    lock.acquire()
    try:
        run = open_run(run.path)  # the manifest as it is now that no capture can append
        return _analyze(
            run,
            epoch,
            labels,
            against,
            top,
            workers,
            cka,
            pictures,
            max_channels,
            cmap,
            quiet,
            pool or LOCAL,
            cka_method,
        )
    finally:
        lock.release()


def _analyze(
    run: Run,
    epoch: int | str | None,
    labels_path: str | Path | None,
    against: str | Path | None,
    top: int,
    workers: int,
    cka: bool,
    pictures: bool,
    max_channels: int,
    cmap: str,
    quiet: bool,
    pool: WorkerPool,
    cka_method: str = "auto",
) -> AnalysisReport:
    if cka_method not in METHODS:
        raise ConfigError(f"cka: expected one of {METHODS}, received {cka_method!r}")
    report = AnalysisReport(files.folder(run.path))
    epochs = resolve_epochs(run, epoch)
    labels, class_names = labelmod.resolve(run, labels_path)
    for ep in epochs:
        report.prefix[ep] = stop = complete_prefix(run, ep)
        if stop < run.num_patterns:
            at = "" if ep is None else f" at epoch {ep}"
            log.warning(
                "run %s is incomplete%s: analyzing its complete prefix, patterns 0..%d of %d; "
                "finish the capture (rerun it) and analyze again for all of them",
                run.path,
                at,
                stop - 1,
                run.num_patterns,
            )
    stop_all = max(report.prefix.values(), default=0)
    classes = None if labels is None else np.unique(labels[:stop_all])
    settings = Settings(top, labels, classes)
    how = digest(top, None if labels is None else digest(labels.tobytes()))
    for name in run.layers:
        if not all(pieces.uniform(run, name, ep) for ep in epochs):
            log.warning(
                "layer %r is left out: its outputs change shape from file to file (a free "
                "size); analyze needs one shape per layer",
                name,
            )
    jobs = [
        layer_job(run, name, ep, report.prefix[ep], how, pieces.piece_bytes())
        for ep in epochs
        for name in run.layers
        if report.prefix[ep] > 0 and pieces.uniform(run, name, ep)
    ]
    # one decision for the whole analysis, from its data alone (``--workers`` never changes
    # which path reduced a value); not part of ``how``: both paths agree to float32 rounding
    planned = kernel.plan(sum(p.nbytes for job in jobs for p in job.pieces))
    settings = dataclasses.replace(settings, fused=planned)
    index = files.read_index(run.path)
    todo = [job for job in jobs if not _up_to_date(run, index, job)]
    report.reused = [job_file(job) for job in jobs if job not in todo]
    cka_jobs: list[CkaJob] = []
    if cka:
        other = open_run(against) if against else None
        run_path = str(run.path.resolve()) if pool.remote else str(run.path)
        cka_jobs = cka_tasks.plan(run, epochs, report, index, other, cka_method, run_path)
    if todo or cka_jobs:
        _reduce_jobs(run, todo, settings, workers, quiet, index, report, pool, cka_jobs)
    if cka and run.is_training and len(epochs) > 1:
        epochs_cka(run, epochs, report, index, quiet, cka_method)
    if pictures:  # drawing is render's: analyze only computes and stores arrays
        from ..rendering.analysis import draw_all

        report.pictures += draw_all(run, epochs, class_names, max_channels, cmap, quiet)
    return report


def job_file(job: LayerJob) -> str:
    return files.layer_file(job.dir, job.epoch)


def _up_to_date(run: Run, index: dict, job: LayerJob) -> bool:
    rel = job_file(job)
    rec = index.get(rel) or {}
    return rec.get("key") == job.key and (files.folder(run.path) / rel).is_file()


def _reduce_jobs(
    run: Run,
    jobs: Sequence[LayerJob],
    settings: Settings,
    workers: int,
    quiet: bool,
    index: dict,
    report: AnalysisReport,
    pool: WorkerPool,
    cka_jobs: Sequence[CkaJob] = (),
) -> None:
    run_path = str(run.path.resolve()) if pool.remote else str(run.path)
    pending = [
        (job, p) for job in jobs for p in job.pieces if not partial_path(run_path, p).is_file()
    ]
    total = sum(p.nbytes for _, p in pending)
    report.pieces = len(pending)
    cores = os.cpu_count() or 1
    tasks = len(pending) + sum(cores if cka_tasks.parallel(j) else 1 for j in cka_jobs)
    n = (
        pool.workers(workers)
        if pool.remote
        else local_workers(workers, tasks, total + sum(j.nbytes for j in cka_jobs), POOL_MIN_BYTES)
    )
    if n > 1 or pool.remote:
        if pending and not pool.remote:
            kernel.prepare_pool(bool(settings.fused))
        cka_jobs = [cka_tasks.with_ranges(j, n) for j in cka_jobs]
        _pool_all(run, run_path, jobs, pending, settings, n, quiet, index, report, pool, cka_jobs)
        return
    if jobs:
        _statistics(run, run_path, jobs, pending, settings, n, quiet, index, report, pool, [])
    for job in cka_jobs:  # in this process, after the statistics, as one range
        out = cka_tasks.compute_here(cka_tasks.with_ranges(job, 1))
        keep(run, job.rel, job.key, out, index, report)


def _pool_all(
    run: Run,
    run_path: str,
    jobs: Sequence[LayerJob],
    pending: list[tuple[LayerJob, Piece]],
    settings: Settings,
    n: int,
    quiet: bool,
    index: dict,
    report: AnalysisReport,
    pool: WorkerPool,
    cka_jobs: Sequence[CkaJob],
) -> None:
    """The statistics pieces and the CKA ranges in one pool, the CKA ranges first (the
    longest tasks); a CKA file is merged and written as soon as its ranges are done."""
    left = {job.rel: 0 for job in cka_jobs}
    items = []
    for job in cka_jobs:
        for i in range(len(job.ranges)):
            if not cka_tasks.partial_path(run_path, job, i).is_file():  # else kept: resumed
                items.append((job, i))
                left[job.rel] += 1
    errors: list[BaseException] = []
    failed: set[str] = set()

    def finish(job: CkaJob) -> None:
        keep(run, job.rel, job.key, cka_tasks.finish(run_path, job), index, report)

    for job in cka_jobs:
        if left[job.rel] == 0:
            finish(job)

    def done(job: CkaJob, error: BaseException | None) -> None:
        left[job.rel] -= 1
        if error is not None:  # a damaged file: raised once the statistics are done
            errors.append(error)
            failed.add(job.rel)
        elif left[job.rel] == 0 and job.rel not in failed:
            finish(job)

    _statistics(run, run_path, jobs, pending, settings, n, quiet, index, report, pool, items, done)
    if errors:
        raise errors[0]


def _statistics(
    run: Run,
    run_path: str,
    jobs: Sequence[LayerJob],
    pending: list[tuple[LayerJob, Piece]],
    settings: Settings,
    n: int,
    quiet: bool,
    index: dict,
    report: AnalysisReport,
    pool: WorkerPool,
    cka_items: list[tuple[CkaJob, int]],
    cka_done: Callable[[CkaJob, BaseException | None], None] | None = None,
) -> None:
    """The statistics pieces (and ``cka_items``, first, each followed by ``cka_done``) on
    ``n`` workers; every layer's file written as soon as its pieces are done."""
    total = sum(p.nbytes for _, p in pending)
    total += sum(job.nbytes // len(job.ranges) for job, _ in cka_items)
    failed: dict[str, str] = {}
    left = {job.key: 0 for job in jobs}  # pieces still to reduce, per job
    for job, _ in pending:
        left[job.key] += 1

    def finished(job: LayerJob) -> None:
        if job.key not in failed:
            _finish_job(run, job, settings, index)
            report.computed.append(job_file(job))

    with tqdm(
        total=total, unit="B", unit_scale=True, desc="analyze", disable=quiet, leave=False
    ) as bar:

        def cka_finished(item: tuple[CkaJob, int], error: BaseException | None) -> None:
            bar.update(item[0].nbytes // len(item[0].ranges))
            if cka_done is not None:
                cka_done(item[0], error)

        for job in jobs:
            if left[job.key] == 0:
                finished(job)

        def done(job: LayerJob, piece: Piece, error: BaseException | None) -> None:
            bar.update(piece.nbytes)
            if isinstance(error, DamagedDataError):
                if job.key not in failed:
                    failed[job.key] = str(error)
                    report.problems.append(f"layer {job.layer!r} left out: {error}")
            elif error is not None:
                raise error
            left[job.key] -= 1
            if left[job.key] == 0:
                finished(job)

        here = open_run(run_path) if n <= 1 and not pool.remote else None  # files checked afresh
        if cka_items:  # one pool for both kinds, tagged
            tagged = [("cka", item) for item in cka_items] + [("piece", jp) for jp in pending]
            run_each(
                pool,
                n,
                tagged,
                cka_tasks.run_task,
                lambda t: (
                    ("cka", run_path, *t[1])
                    if t[0] == "cka"
                    else ("piece", run_path, *t[1], settings)
                ),
                lambda t, error: (
                    cka_finished(t[1], error) if t[0] == "cka" else done(t[1][0], t[1][1], error)
                ),
                (DamagedDataError,),
            )
        else:
            run_each(
                pool,
                n,
                pending,
                reduce_piece,
                lambda jp: (run_path, jp[0], jp[1], settings),
                lambda jp, error: done(jp[0], jp[1], error),
                (DamagedDataError,),
                None if here is None else lambda jp: reduce_piece(run_path, *jp, settings, here),
            )
    keep = {partial_path(run.path, p).name for job in jobs if job.key in failed for p in job.pieces}
    _clean_partials(files.folder(run.path) / files.PARTIAL, keep)


def _clean_partials(folder: Path, keep: set[str]) -> None:
    """Remove what an analysis left in ``.partial/`` (this one's merged pieces, and a killed
    one's partials and temporaries) but the partials of layers left out for damage, which a
    later analysis may reuse; the folder goes when empty. The run's lock is held: no other
    analysis writes here."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def _finish_job(run: Run, job: LayerJob, settings: Settings, index: dict) -> None:
    """Merge a job's partial results, write its file and index line, drop the partials."""
    red: LayerReduction = new_reduction(job, settings)
    paths = [partial_path(run.path, p) for p in job.pieces]
    for path in paths:
        red.merge(LayerReduction.from_state(files.read_arrays(path)))
    rel = job_file(job)
    files.write_arrays(files.folder(run.path) / rel, red.result())
    index[rel] = {"key": job.key, "patterns": job.stop, "layer": job.layer, "epoch": job.epoch}
    files.write_index(run.path, index)
    for path in paths:
        path.unlink(missing_ok=True)
