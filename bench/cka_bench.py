"""CKA figures: analyze with CKA in the pool (exact, and the randomized sketch) against a checked
read-and-sum of the same files, side by side in one run; the sketch's error against exact on
that data; the whole ``passage analyze`` command in a fresh process (with its peak RSS); and
the floor exact CKA cannot go below on this machine (n p^2 syrk flops at the measured float32
rate).

The run is the article's model over ``random:N`` with the ``seed`` rule, as the analysis suite
captures it (three Dense layers, 3,750 + 2,500 + 1,250 = 7,500 features per pattern)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from pipeline.analysis.cka_sketch import DEFAULT_SKETCH_SIZE, cka_sd_bound
from pipeline.analysis.runner import analyze
from pipeline.capturing.stream import capture
from pipeline.store import Run, open_run

from .analysis_suite import ReadAndSum
from .common import capture_config, child_env, fit_to_disk, passage_cmd
from .figures import Figure
from .measure import folder_bytes, peak_rss
from .sizes import Sizes

log = logging.getLogger(__name__)


class TimedCka:
    """``analyze(run, cka_method=..., pictures=False)`` from scratch (default workers: the
    pool); keeps the CKA matrix of its last call."""

    def __init__(self, path: Path, method: str) -> None:
        self.path = path
        self.method = method
        self.matrix: np.ndarray | None = None
        self.stored_method = ""

    def __call__(self) -> float:
        shutil.rmtree(self.path / "analysis", ignore_errors=True)
        start = time.perf_counter()
        report = analyze(self.path, pictures=False, quiet=True, cka_method=self.method)
        elapsed = time.perf_counter() - start
        if report.problems or "cka.npz" not in report.computed:
            raise RuntimeError(f"analysis of {self.path} did not compute cka.npz: {report}")
        cka = open_run(self.path).cka()
        self.matrix, self.stored_method = cka.matrix, cka.method
        return elapsed


class WholeCommand:
    """``passage analyze RUN --no-pictures --cka METHOD`` in a fresh child process tree (its
    start-up included); records the peak of the tree's summed RSS."""

    def __init__(self, path: Path, method: str) -> None:
        self.path = path
        self.method = method
        self.peaks: list[int] = []

    def __call__(self) -> float:
        shutil.rmtree(self.path / "analysis", ignore_errors=True)
        cmd = passage_cmd("analyze", str(self.path), "--no-pictures", "--cka", self.method)
        peak, elapsed = peak_rss(cmd, env=child_env())
        self.peaks.append(peak)
        return elapsed


def syrk_rate(features: int, rows: int = 4096, repeats: int = 3) -> float:
    """This machine's float32 ``Z^T Z`` rate, in n p^2 per second (numpy's BLAS, all cores)."""
    z = np.random.default_rng(0).standard_normal((rows, features), dtype=np.float32)
    best = min(_timed(lambda: z.T @ z) for _ in range(repeats))
    return rows * features**2 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cka_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    """The CKA rows on a run of ``sizes.analysis`` patterns (fewer if the disk is short)."""
    probe = _capture(tmp / "cka-probe", max(30, sizes.analysis_small // 10), sizes.batch_size)
    per_pattern = folder_bytes(probe.path / "data") / probe.num_patterns
    shutil.rmtree(probe.path, ignore_errors=True)
    n = fit_to_disk(sizes.analysis, per_pattern, tmp)
    run = _capture(tmp / "cka", n, sizes.batch_size)
    try:
        return _figures(run, sizes)
    finally:
        shutil.rmtree(run.path, ignore_errors=True)


def _capture(out: Path, n: int, batch_size: int) -> Run:
    log.info("cka: capturing builtin:seed over random:%d (rule seed)", n)
    return capture(capture_config(out, n, batch_size), quiet=True)


def _figures(run: Run, sizes: Sizes) -> list[Figure]:
    n = run.num_patterns
    features = sum(int(np.prod(run.chunks(name)[0].shape)) for name in run.layers)
    timed = {
        "checked": ReadAndSum(run.path, check=True),
        "exact": TimedCka(run.path, "exact"),
        "sketch": TimedCka(run.path, "sketch"),
        "command": WholeCommand(run.path, "exact"),
    }
    log.info("cka: warm-up (one untimed read-and-sum)")
    timed["checked"]()
    times: dict[str, list[float]] = {name: [] for name in timed}
    names = list(timed)
    for r in range(sizes.repeats):  # interleaved, the order rotated, as measure.interleaved
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed[name]())
            log.info("cka: %s %.2f s", name, times[name][-1])
    med = {name: float(np.median(ts)) for name, ts in times.items()}
    exact, sketch = timed["exact"], timed["sketch"]
    assert exact.matrix is not None and sketch.matrix is not None
    error = float(np.nanmax(np.abs(sketch.matrix - exact.matrix)))
    rate = syrk_rate(features)
    floor = n * features**2 / rate
    peak = max(timed["command"].peaks) / 2**20
    mib = folder_bytes(run.path / "data") / 2**20

    def runs(name: str) -> str:
        """Each round's ratio, against that round's checked read-and-sum."""
        pairs = zip(times["checked"], times[name], strict=True)
        return ", ".join(f"{c / t:.3f}" for c, t in pairs)

    def ratio(name: str) -> float:
        return med["checked"] / med[name]

    return [
        Figure(
            f"analyze with exact CKA in the pool / checked read-and-sum, {n:,} patterns",
            n / med["checked"],
            n / med["exact"],
            "patterns/s",
            ratio("exact"),
            (">=", 0.25),
            f"analyze(run, cka_method='exact', pictures=False), default workers: statistics "
            f"pieces and CKA pattern ranges in one pool, merged in float64 here "
            f"({exact.stored_method}, {features:,} features); {med['exact']:.1f} s against "
            f"{med['checked']:.2f} s for the checked read-and-sum of {mib:,.0f} MiB; runs: "
            f"{runs('exact')}",
        ),
        Figure(
            f"same, --cka sketch (k = {DEFAULT_SKETCH_SIZE} per sketch, 2 per layer)",
            n / med["checked"],
            n / med["sketch"],
            "patterns/s",
            ratio("sketch"),
            None,
            f"{med['sketch']:.1f} s; runs: {runs('sketch')}",
        ),
        Figure(
            "sketch CKA error against exact, same data (max |delta|)",
            None,
            error,
            "CKA",
            error,
            None,
            f"max over the layer pairs of |sketch - exact|; the stated bound is a relative sd "
            f"of at most {cka_sd_bound(DEFAULT_SKETCH_SIZE):.2f} (views of effective rank 1), "
            f"far smaller on views of higher rank",
        ),
        Figure(
            "whole `passage analyze --no-pictures --cka exact` / checked read-and-sum",
            n / med["checked"],
            n / med["command"],
            "patterns/s",
            ratio("command"),
            None,
            f"a fresh child process (start-up, pool, statistics, CKA), {med['command']:.1f} s; "
            f"peak RSS of its process tree {peak:,.0f} MiB; runs: {runs('command')}",
        ),
        Figure(
            "exact CKA floor on this machine / checked read-and-sum",
            n / med["checked"],
            n / floor,
            "patterns/s",
            med["checked"] / floor,
            None,
            f"the most 'analyze with exact CKA' can reach: the float32 syrk's n p^2 = "
            f"{n * features**2:.2e} flops (n p^2 / 2 multiply-adds) at {rate / 1e9:.0f} "
            f"GFLOP/s (measured here, all cores) take {floor:.1f} s, before reading a byte",
        ),
    ]
