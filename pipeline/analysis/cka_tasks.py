"""CKA as pool tasks beside the statistics: a job per CKA file, cut into pattern ranges.

A ``CkaJob`` is one CKA file (``cka.npz``, ``cka/epoch-E.npz`` or ``cka-against.npz``): its
views, the method (``gram``, ``exact``, ``sketch`` or ``minibatch``, see ``cka_runs.method``)
and its pattern ranges. Each range is a task of the analyze pool (``cka_range``), run
alongside the statistics pieces: it reads its patterns of every view, accumulates its own
partial result and keeps its state under ``analysis/.partial/`` (named by the digest of the
job and the range, like a statistics piece), so an analysis killed during CKA resumes from the
ranges already kept. When every range is done the parent merges the states in float64
(``ExactCka.merge``; the sketch's is the same) and writes the file (``finish``).

Only exact and sketch jobs are cut: the Gram path reads all its (few) patterns at once, and
the minibatch estimator's batches follow the finite patterns in order, so cutting would change
its value. How many ranges: at most one per worker, and no more than ``CKA_MEMORY_BYTES``
allows for the accumulators running at once (an exact one holds (sum p)^2 float64 values and
a float32 product of the same shape: 675 MB for 7,500 features).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..store import Run, open_run
from ..store import analysis_files as files
from . import cka_sketch
from .cka_runs import (
    View,
    _features,
    _views_key,
    accumulate,
    fresh,
    from_grams,
    method,
    output,
)
from .pieces import complete_prefix, digest, pattern_ranges, uniform, used_entries
from .report import AnalysisReport
from .tasks import reduce_piece

log = logging.getLogger(__name__)

CKA_MEMORY_BYTES = 3 << 29  # 1.5 GiB: what all the CKA tasks running at once may hold

ViewRef = tuple[str, str, "int | None"]  # run path, layer, epoch


@dataclass(frozen=True)
class CkaJob:
    """One CKA file to compute: ``views`` over patterns 0..stop-1 by ``method``, in
    ``ranges``; ``split`` > 0 for a file against another run (the first ``split`` views are
    this run's); ``names`` / ``other_names`` label the matrix."""

    rel: str
    key: str
    views: tuple[ViewRef, ...]
    stop: int
    method: str
    feature_counts: tuple[int, ...]
    names: tuple[str, ...]
    split: int = 0
    other_names: tuple[str, ...] = ()
    other_run: str = ""
    ranges: tuple[tuple[int, int], ...] = ()
    nbytes: int = 0  # of the data files it reads
    chunk: int = 1  # patterns per data file of the first view: where ranges are cut
    threads: int = 0  # BLAS threads of a worker running one range (0: as the library likes)

    def task_bytes(self) -> int:
        """Memory of one range's accumulator at work (state + one product)."""
        width = sum(self.feature_counts)
        if self.method == "sketch":
            width = 2 * sum(min(cka_sketch_size(), p) for p in self.feature_counts)
        return 12 * width * width if self.method in ("exact", "sketch") else 0


def cka_sketch_size() -> int:
    from .cka_sketch import DEFAULT_SKETCH_SIZE

    return DEFAULT_SKETCH_SIZE


def with_ranges(job: CkaJob, workers: int) -> CkaJob:
    """``job`` cut into at most ``workers`` pattern ranges (at file bounds), fewer when
    their accumulators would not fit ``CKA_MEMORY_BYTES`` together; one range for the Gram and
    minibatch methods."""
    parts = 1
    if parallel(job) and workers > 1:
        fit = CKA_MEMORY_BYTES // max(1, job.task_bytes())
        parts = max(1, min(workers, fit))
    ranges = pattern_ranges(job.stop, max(1, job.chunk), parts) or [(0, job.stop)]
    # each range's syrk on its share of the cores: more BLAS threads than cores slow every
    # product down (a single range keeps them all)
    threads = max(1, (os.cpu_count() or 1) // len(ranges)) if workers > 1 else 0
    return replace(job, ranges=tuple(ranges), threads=threads)


def partial_path(run_path: str | Path, job: CkaJob, index: int) -> Path:
    a, b = job.ranges[index]
    name = f"cka-{digest(job.key, job.method, a, b)}.npz"
    return files.folder(Path(run_path)) / files.PARTIAL / name


def _write(path: Path, arrays: dict[str, Any]) -> None:
    """An uncompressed ``.npz`` written to a temporary file and renamed: atomic, and without
    the in-memory copies of ``files.write_arrays`` (an exact state is 450 MB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(temp, path)


def compute_range(job: CkaJob, index: int) -> dict[str, Any]:
    """Range ``index`` of ``job``: the final arrays of a Gram job, else the accumulator's
    state and ``excluded`` (patterns left out for NaN/Inf)."""
    runs = {path: open_run(path) for path in {v[0] for v in job.views}}
    views = [(runs[path], name, ep) for path, name, ep in job.views]
    if job.method == "gram":
        return from_grams(views, job.stop)
    a, b = job.ranges[index]
    acc, excluded = accumulate(views, a, b, job.method, list(job.feature_counts), "", True)
    state = acc.state()
    state["excluded"] = np.array(excluded, dtype=np.int64)
    return state


def parallel(job: CkaJob) -> bool:
    """Whether the job can be cut into several ranges."""
    return job.method in ("exact", "sketch")


def run_task(kind: str, *args: object) -> str:
    """What a pool worker runs for one item of an analysis: ``"piece"`` (``tasks.reduce_piece``)
    or ``"cka"`` (``cka_range``), so both kinds share one pool."""
    if kind == "cka":
        return cka_range(*args)  # type: ignore[arg-type]
    return reduce_piece(*args)  # type: ignore[arg-type]


def cka_range(run_path: str, job: CkaJob, index: int) -> str:
    """The pool task: compute range ``index`` of ``job`` and keep it; returns its path."""
    path = partial_path(run_path, job, index)
    with _blas_threads(job.threads):
        state = compute_range(job, index)
    _write(path, state)
    return str(path)


def _blas_threads(threads: int) -> AbstractContextManager[object]:
    """At most ``threads`` BLAS threads inside (``threadpoolctl``, which scikit-learn brings;
    nothing changes without it, or for 0)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return nullcontext()
    return threadpool_limits(threads, user_api="blas") if threads > 0 else nullcontext()


def _labelled(out: dict[str, Any], job: CkaJob) -> dict[str, Any]:
    out["names"] = np.array(job.names)
    if job.split:
        out["matrix"] = out["matrix"][: job.split, job.split :]
        out["other_names"] = np.array(job.other_names)
        out["other_run"] = np.array(job.other_run)
    return out


def finish(run_path: str | Path, job: CkaJob) -> dict[str, Any]:
    """The CKA file's arrays from the ranges' kept results, merged in range order (each state
    loaded when its turn comes, so the parent holds two at most); the partials are dropped."""
    paths = [partial_path(run_path, job, i) for i in range(len(job.ranges))]
    if job.method == "gram":
        out = files.read_arrays(paths[0])
    else:
        excluded = 0
        acc = None
        for path in paths:
            part = files.read_arrays(path)
            excluded += int(part.pop("excluded"))
            if acc is None:
                acc = cka_sketch.from_state(part)
            else:
                acc.merge(cka_sketch.from_state(part))
            del part
        out = output(acc, excluded)
    for path in paths:
        path.unlink(missing_ok=True)
    return _labelled(out, job)


def compute_here(job: CkaJob) -> dict[str, Any]:
    """The whole job in this process, one range after another, nothing kept on disk."""
    if job.method == "gram":
        return _labelled(compute_range(job, 0), job)
    runs = {path: open_run(path) for path in {v[0] for v in job.views}}
    views = [(runs[path], name, ep) for path, name, ep in job.views]
    acc, excluded = None, 0
    for a, b in job.ranges:
        part, left_out = accumulate(views, a, b, job.method, list(job.feature_counts), "cka", True)
        excluded += left_out
        if acc is None:
            acc = part
        else:
            acc.merge(part)
    return _labelled(output(acc, excluded), job)


def plan(
    run: Run,
    epochs: Sequence[int | None],
    report: AnalysisReport,
    index: dict,
    against: Run | None,
    mode: str,
    run_path: str,
) -> list[CkaJob]:
    """The CKA files to compute (one per epoch, and one against another run), those up to
    date counted as reused; without ranges yet (``with_ranges``). ``run_path``: this run's
    path as the tasks see it."""
    jobs = []
    for ep in epochs:
        stop = report.prefix.get(ep, 0)
        if stop < 2 or not run.layers:
            log.info("CKA needs at least 2 patterns; %s holds %d: no cka.npz", run.path, stop)
            continue
        names = [name for name in run.layers if uniform(run, name, ep)]
        if names:
            views = [(run, name, ep) for name in names]
            jobs.append(_job(run, files.cka_file(ep), views, stop, mode, names, run_path))
    if against is not None:
        job = _against(run, against, epochs[-1], report, mode, run_path)
        if job is not None:
            jobs.append(job)
    return [job for job in jobs if not fresh(run, job.rel, job.key, index, report)]


def _job(
    run: Run,
    rel: str,
    views: Sequence[View],
    stop: int,
    mode: str,
    names: Sequence[str],
    run_path: str,
    **more: Any,
) -> CkaJob:
    feats = [_features(*v) for v in views]
    kind = method(feats, stop, mode)
    key = _views_key(views, stop, "auto" if kind == method(feats, stop) else mode)
    remote = run_path != str(run.path)  # a cluster's workers get absolute paths

    def where(r: Run) -> str:
        return run_path if r is run else str(r.path.resolve()) if remote else str(r.path)

    refs = tuple((where(r), name, ep) for r, name, ep in views)
    used = [used_entries(r, name, ep, stop) for r, name, ep in views]
    nbytes = sum(e.bytes for entries in used for e in entries)
    chunk = used[0][0].count if used[0] else 1
    return CkaJob(
        rel, key, refs, stop, kind, tuple(feats), tuple(names), nbytes=nbytes, chunk=chunk, **more
    )


def _against(
    run: Run, other: Run, epoch: int | None, report: AnalysisReport, mode: str, run_path: str
) -> CkaJob | None:
    """``cka-against.npz``: this run's layers x the other run's layers over the same patterns
    (each run at its last recorded epoch, this one at ``epoch``)."""
    mine = (run.info.get("identity") or {}).get("patterns")
    theirs = (other.info.get("identity") or {}).get("patterns")
    if run.num_patterns != other.num_patterns or (mine and theirs and mine != theirs):
        raise ConfigError(
            f"against: expected a run over the same patterns as {run.path} "
            f"({run.num_patterns} from {run.info.get('patterns')!r}), received {other.path} "
            f"({other.num_patterns} from {other.info.get('patterns')!r}); capture the other "
            "model with the same patterns"
        )
    other_ep = other.epochs[-1] if other.epochs else None
    stop = min(report.prefix.get(epoch, 0), complete_prefix(other, other_ep))
    mine_names = [n for n in run.layers if uniform(run, n, epoch)]
    their_names = [n for n in other.layers if uniform(other, n, other_ep)]
    if stop < 2 or not mine_names or not their_names:
        return None
    views = [(run, n, epoch) for n in mine_names] + [(other, n, other_ep) for n in their_names]
    return _job(
        run,
        "cka-against.npz",
        views,
        stop,
        mode,
        mine_names,
        run_path,
        split=len(mine_names),
        other_names=tuple(their_names),
        other_run=str(other.path),
    )
