"""Analyze figures: the layer statistics' throughput against reading the same files and summing
them (same process, interleaved), what the CRC-32 check and exact CKA cost beside it, and peak
RSS growth with the number of patterns.

Both runs are the article's model over ``random:N`` with the ``seed`` rule, as
``configs/batch.toml`` captures it: three Dense layers, 50x75, 50x50 and 50x25 float32 values
per pattern (29 KiB; 100,000 patterns are 2.9 GB)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

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
    with_cka = TimedAnalyze(run.path, workers=0, cka=True)
    log.info("analysis: warm-up (one untimed read-and-sum each, one untimed analysis each)")
    checked(), unchecked(), ours(), one()
    _check_report(ours, run, cka=False)
    log.info(
        "analysis: %d x (checked read, unchecked read, analyze, analyze --workers 1) on %d "
        "patterns",
        sizes.repeats,
        n,
    )
    med = interleaved(
        {"checked": checked, "unchecked": unchecked, "ours": ours, "one": one}, sizes.repeats
    )
    log.info("analysis: %d x (checked read, analyze with CKA)", sizes.analysis_cka_repeats)
    med_cka = interleaved({"checked": checked, "cka": with_cka}, sizes.analysis_cka_repeats)
    _check_report(with_cka, run, cka=True)
    pool = os.cpu_count() or 1
    suffix = f"; {note}" if note else ""

    def rate(key: str, medians: dict[str, float] = med) -> float:
        return n / medians[key]

    return [
        Figure(
            f"analyze throughput / checked read-and-sum, {n:,} patterns (builtin:seed)",
            rate("checked"),
            rate("ours"),
            "patterns/s",
            med["checked"] / med["ours"],
            (">=", 0.7),
            f"ours: analyze(run, cka=False, pictures=False), the layer statistics with the "
            f"default workers (a pool of {pool} processes here, its start-up included), "
            f"analysis/ deleted before each; baseline: the same {mib:,.0f} MiB of files read "
            "with Run.load(entry, check=True) (size + CRC-32, then the mapped array) and "
            f"summed, one after another in this process{suffix}",
        ),
        Figure(
            "same, analyze --workers 1 (statistics in this process)",
            rate("checked"),
            rate("one"),
            "patterns/s",
            med["checked"] / med["one"],
            None,
            "one process reduces every piece, as the checked read-and-sum does",
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
        Figure(
            "analyze with exact CKA / checked read-and-sum",
            rate("checked", med_cka),
            rate("cka", med_cka),
            "patterns/s",
            med_cka["checked"] / med_cka["cka"],
            None,
            f"analyze(run, cka=True, pictures=False), default workers: the statistics, then the "
            f"exact CKA of the 3 layers (7,500 features together) in this process; "
            f"{sizes.analysis_cka_repeats} timed run(s), {med_cka['cka']:.1f} s, of which about "
            f"{med_cka['cka'] - med['ours']:.1f} s CKA",
        ),
    ]


def _check_report(timed: TimedAnalyze, run: Run, cka: bool) -> None:
    """The timed analysis computed every layer (and the CKA matrix) and reported no problem."""
    report = timed.report
    expected = len(run.layers) + (1 if cka else 0)
    if report is None or report.problems or len(report.computed) != expected:
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
            else "the statistics over the default pool, then exact CKA in the main process "
            "(a float64 state of 7,500^2 values, 450 MB)"
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
