"""``analyze(run, ...)``: every layer's statistics, the CKA matrices, and the pictures (drawn by
``rendering.analysis``).

The run's lock is held for the whole analysis: a run still being captured is refused (its
capture holds the lock), and a capture cannot start while analyze writes. A run whose capture
stopped early is analyzed up to its complete prefix (the patterns every layer holds), with a
warning; analyzing again after the capture finished computes the files again.

Layer statistics are cut into pieces (a few data files of one layer at one epoch) spread over
a process pool; each piece's partial result is kept under ``analysis/.partial/`` so that an
analysis killed at any moment resumes where it was. ``analysis/index.json`` records what each
file was computed from: a rerun skips what is up to date.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, DamagedDataError
from ..executors import LOCAL, WorkerPool, local_workers, run_each
from ..store import Run, open_run
from ..store import analysis_files as files
from ..store.lock import RunLock
from . import labels as labelmod
from . import pieces
from .cka_runs import against_runs, epochs_cka, layers_cka
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
) -> AnalysisReport:
    """Analyze a captured run into ``RUN/analysis/`` (see the module docstring). ``pool``:
    where the pieces are reduced (default: processes here; ``pipeline.distributed`` for a
    cluster, whose workers must see the run at the same path)."""
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
) -> AnalysisReport:
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
    index = files.read_index(run.path)
    todo = [job for job in jobs if not _up_to_date(run, index, job)]
    report.reused = [job_file(job) for job in jobs if job not in todo]
    if todo:
        _reduce_jobs(run, todo, settings, workers, quiet, index, report, pool)
    if cka:
        layers_cka(run, epochs, report, index, quiet)
        if run.is_training and len(epochs) > 1:
            epochs_cka(run, epochs, report, index, quiet)
        if against:
            against_runs(run, open_run(against), epochs[-1], report, index, quiet)
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
) -> None:
    run_path = str(run.path.resolve()) if pool.remote else str(run.path)
    pending = [
        (job, p) for job in jobs for p in job.pieces if not partial_path(run_path, p).is_file()
    ]
    total = sum(p.nbytes for _, p in pending)
    report.pieces = len(pending)
    n = (
        pool.workers(workers)
        if pool.remote
        else local_workers(workers, len(pending), total, POOL_MIN_BYTES)
    )
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
