"""Timing and memory helpers: interleaved repeats with medians, and the peak RSS of a command
run in a fresh process tree (so one measurement cannot pollute another)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Timed = Callable[[], float]


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(runs: Mapping[str, Timed], repeats: int) -> dict[str, float]:
    """Call each function in turn ``repeats`` times, the order rotated each time (A B C,
    B C A, C A B, ...); median of each.

    Rotating matters: on this VM a capture right after the bare forward pass measured 0.62-0.63
    of it, the same capture after another capture 0.66-0.69 (side by side, three runs); with a
    fixed order one run would always pay for what the previous one left behind.
    Each function returns the seconds it measured (so set-up and clean-up stay outside)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(runs[name]())
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_rss(
    cmd: Sequence[str], env: Mapping[str, str] | None = None, poll_s: float = 0.02
) -> tuple[int, float]:
    """Run ``cmd``; return (peak of the summed RSS of its process tree in bytes, seconds).

    Raises RuntimeError with the command's stderr tail if it fails."""
    import psutil

    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=err)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            peak = max(peak, total)
            time.sleep(poll_s)
        proc.wait()
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    return peak, elapsed


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
