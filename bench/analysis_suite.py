"""Analyze figures: the layer statistics' throughput against reading the same files and summing
them (same process, interleaved), the whole ``passage analyze --no-cka --no-pictures`` command
as a user runs it, the compiled statistics kernel against the numpy path, what the CRC-32 check
costs, and peak RSS growth with the number of patterns (CKA's figures: ``cka_bench``).

Both runs are the article's model over ``random:N`` with the ``seed`` rule, as
``configs/batch.toml`` captures it: three Dense layers, 50x75, 50x50 and 50x25 float32 values
per pattern (29 KiB; 100,000 patterns are 2.9 GB)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from pipeline.analysis.kernel import AUTO_MIN_BYTES, KERNEL_ENV
from pipeline.analysis.runner import AnalysisReport, analyze
from pipeline.capturing.stream import capture
from pipeline.store import Run, open_run

from .common import capture_config, child_env, fit_to_disk, passage_cmd
from .figures import Figure
from .measure import folder_bytes, interleaved, peak_rss
from .sizes import Sizes

log = logging.getLogger(__name__)


class ReadAndSum:
    """Every data file of a run read and summed, one after another, in this process: with
    ``check`` as analyze reads them (``Run.load(entry, check=True)``: size and CRC-32 against
    the manifest line, then the mapped array), without as a bare ``np.load`` memory map.
    A fresh reader each call, so every file is checked again."""

    def __init__(self, path: Path, check: bool) -> None:
        self.path = path
        self.check = check
        self.total = 0.0

    def __call__(self) -> float:
        start = time.perf_counter()
        run = open_run(self.path)
        total = 0.0
        for name in run.layers:
            for entry in run.chunks(name):
                if self.check:
                    arr = run.load(entry, check=True)
                else:
                    arr = np.load(run.path / entry.path, mmap_mode="r", allow_pickle=False)
                total += float(arr.sum())
                del arr
        elapsed = time.perf_counter() - start
        self.total = total
        return elapsed


class TimedAnalyze:
    """``analyze(run, cka=..., pictures=False, workers=...)`` from scratch: the run's
    ``analysis/`` folder is deleted first so every file is computed again."""

    def __init__(self, path: Path, workers: int, cka: bool) -> None:
        self.path = path
        self.workers = workers
        self.cka = cka
        self.report: AnalysisReport | None = None

    def __call__(self) -> float:
        shutil.rmtree(self.path / "analysis", ignore_errors=True)
        start = time.perf_counter()
        self.report = analyze(
            self.path, workers=self.workers, cka=self.cka, pictures=False, quiet=True
        )
        return time.perf_counter() - start


class WithKernel:
    """A timed call with ``$PASSAGE_STATS_KERNEL`` set to ``how`` (numba or numpy) meanwhile."""

    def __init__(self, timed: TimedAnalyze, how: str) -> None:
        self.timed = timed
        self.how = how

    def __call__(self) -> float:
        before = os.environ.get(KERNEL_ENV)
        os.environ[KERNEL_ENV] = self.how
        try:
            return self.timed()
        finally:
            if before is None:
                os.environ.pop(KERNEL_ENV, None)
            else:
                os.environ[KERNEL_ENV] = before


class TimedCommand:
    """``passage analyze RUN --no-cka --no-pictures`` in a fresh process, as a user runs it
    (interpreter start, imports, the default pool and its start-up), ``analysis/`` deleted
    first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cmd = passage_cmd("analyze", str(path), "--no-cka", "--no-pictures")

    def __call__(self) -> float:
        shutil.rmtree(self.path / "analysis", ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(self.cmd, env=child_env(), check=True, capture_output=True)
        elapsed = time.perf_counter() - start
        if not (self.path / "analysis" / "index.json").is_file():
            raise RuntimeError(f"{' '.join(self.cmd)} wrote no analysis/index.json")
        return elapsed


def analysis_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    small = _capture(tmp / "analysis-small", sizes.analysis_small, sizes.batch_size)
    data = folder_bytes(small.path / "data")
    n = fit_to_disk(sizes.analysis, data / sizes.analysis_small, tmp)
    note = "" if n == sizes.analysis else f"reduced from {sizes.analysis:,} to fit the free disk"
    if note:
        log.warning("analysis: %s (%.1f GB free)", note, shutil.disk_usage(tmp).free / 1e9)
    large = _capture(tmp / "analysis", n, sizes.batch_size)
    try:
        figures = _throughput(large, sizes, note)
        figures += _rss(large, small, note)
    finally:
        shutil.rmtree(large.path, ignore_errors=True)
        shutil.rmtree(small.path, ignore_errors=True)
    return figures


def _capture(out: Path, n: int, batch_size: int) -> Run:
    log.info("analysis: capturing builtin:seed over random:%d (rule seed)", n)
    return capture(capture_config(out, n, batch_size), quiet=True)


def _throughput(run: Run, sizes: Sizes, note: str) -> list[Figure]:
    n = run.num_patterns
    mib = folder_bytes(run.path / "data") / 2**20
    checked = ReadAndSum(run.path, check=True)
    unchecked = ReadAndSum(run.path, check=False)
    ours = TimedAnalyze(run.path, workers=0, cka=False)
    one = TimedAnalyze(run.path, workers=1, cka=False)
    command = TimedCommand(run.path)
    fused = WithKernel(TimedAnalyze(run.path, workers=1, cka=False), "numba")
    plain = WithKernel(TimedAnalyze(run.path, workers=1, cka=False), "numpy")
    runs = {
        "checked": checked,
        "unchecked": unchecked,
        "ours": ours,
        "one": one,
        "command": command,
        "fused": fused,
        "plain": plain,
    }
    log.info("analysis: warm-up (one untimed call of each)")
    for timed in runs.values():
        timed()
    _check_report(ours, run)
    log.info("analysis: %d x (%s) on %d patterns", sizes.repeats, ", ".join(runs), n)
    med = interleaved(runs, sizes.repeats)
    pool = os.cpu_count() or 1
    suffix = f"; {note}" if note else ""

    def rate(key: str) -> float:
        return n / med[key]

    return [
        Figure(
            f"analyze throughput / checked read-and-sum, {n:,} patterns (builtin:seed)",
            rate("checked"),
            rate("ours"),
            "patterns/s",
            med["checked"] / med["ours"],
            (">=", 0.8),
            f"ours: analyze(run, cka=False, pictures=False), the layer statistics with the "
            f"default workers (a pool of {pool} processes here, its start-up and each worker's "
            f"load of the compiled kernel, used from {AUTO_MIN_BYTES / 2**30:g} GiB of data, "
            f"included), analysis/ deleted before each; baseline: "
            f"the same {mib:,.0f} MiB of files read with Run.load(entry, check=True) (size + "
            f"CRC-32, then the mapped array) and summed, one after another in this process"
            f"{suffix}",
        ),
        Figure(
            "same, analyze --workers 1 (statistics in this process)",
            rate("checked"),
            rate("one"),
            "patterns/s",
            med["checked"] / med["one"],
            (">=", 0.5),
            f"one process reduces every piece, as the checked read-and-sum does; the compiled "
            f"kernel (loaded once in this process) when the analysis holds at least "
            f"{AUTO_MIN_BYTES / 2**30:g} GiB of data, numpy below ({KERNEL_ENV} unset)",
        ),
        Figure(
            "passage analyze --no-cka --no-pictures, whole command / checked read-and-sum",
            rate("checked"),
            rate("command"),
            "patterns/s",
            med["checked"] / med["command"],
            None,
            f"a fresh `passage analyze RUN --no-cka --no-pictures` process as a user runs it "
            f"(interpreter, imports, default pool, kernel load from its cache): "
            f"{med['command']:.2f} s against {med['checked']:.2f} s for the checked "
            f"read-and-sum in this process",
        ),
        Figure(
            "analyze statistics, compiled kernel / numpy path (--workers 1, same files)",
            rate("plain"),
            rate("fused"),
            "patterns/s",
            med["plain"] / med["fused"],
            None,
            f"analyze(run, workers=1) in this process with {KERNEL_ENV}=numba "
            f"({med['fused']:.2f} s) against {KERNEL_ENV}=numpy ({med['plain']:.2f} s), "
            "interleaved",
        ),
        Figure(
            "read-and-sum checked (size + CRC-32) / unchecked (np.load mmap)",
            rate("unchecked"),
            rate("checked"),
            "patterns/s",
            med["unchecked"] / med["checked"],
            None,
            f"what the check analyze always does costs: {mib / med['checked'] / 1024:.2f} "
            f"against {mib / med['unchecked'] / 1024:.2f} GiB/s; analyze / unchecked "
            f"read-and-sum: {med['unchecked'] / med['ours']:.2f}",
        ),
    ]


def _check_report(timed: TimedAnalyze, run: Run) -> None:
    """The timed analysis computed every layer and reported no problem."""
    report = timed.report
    if report is None or report.problems or len(report.computed) != len(run.layers):
        raise RuntimeError(f"analysis of {run.path} did not compute every file: {report}")


def _rss(large: Run, small: Run, note: str) -> list[Figure]:
    figures = []
    for flags, name, target in (
        ((), "analyze peak RSS, {} / {} patterns", ("<=", 1.15)),
        (("--no-cka",), "same, --no-cka", None),
    ):
        peaks = []
        for run in (small, large):
            shutil.rmtree(run.path / "analysis", ignore_errors=True)
            cmd = passage_cmd("analyze", str(run.path), "--no-pictures", *flags)
            log.info("analysis: peak RSS of %s in a child process tree", " ".join(cmd[4:]))
            peak, elapsed = peak_rss(cmd, env=child_env())
            log.info("analysis: %.0f MiB, %.1f s", peak / 2**20, elapsed)
            peaks.append(peak)
            shutil.rmtree(run.path / "analysis", ignore_errors=True)
        command = " ".join(["passage analyze RUN --no-pictures", *flags])
        what = (
            "the statistics over the default pool only"
            if flags
            else "the statistics and exact CKA in one pool (each CKA range a float64 state "
            "of 7,500^2 values, 450 MB, at most 1.5 GiB of them at once), merged in the main "
            "process"
        )
        figures.append(
            Figure(
                name.format(f"{large.num_patterns:,}", f"{small.num_patterns:,}"),
                peaks[0] / 2**20,
                peaks[1] / 2**20,
                "MiB",
                peaks[1] / peaks[0],
                target,
                f"`{command}` in a fresh child process tree, RSS summed over it: {what}"
                + (f"; {note}" if note else ""),
            )
        )
    return figures
