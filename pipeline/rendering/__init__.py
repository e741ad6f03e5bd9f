"""Render: pictures from a run's files alone (never imports TensorFlow).

``render(run_or_path, out)`` draws, for each pattern, grid pages of its layers; for runs with
epochs also evolution sheets, animations and statistics (see ``training``); and places the
architecture diagram. Pages are spread over a process pool sized to the cores.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import RenderError
from ..store import Run, open_run
from . import layout
from .architecture import place_architecture
from .grids import DrawReport, GridOptions, draw_patterns

log = logging.getLogger(__name__)

__all__ = ["GridOptions", "RenderReport", "render"]

# Below this many patterns a pool costs more (worker start-up) than it saves.
POOL_MIN_PATTERNS = 24


@dataclass
class RenderReport:
    out: Path
    pages: int = 0
    problems: list[str] = field(default_factory=list)  # one line per skipped cell or item
    files: list[Path] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)  # data file -> what is wrong


_RUNS: dict[str, Run] = {}


def _worker_draw(
    run_path: str, out: str, patterns: list[int], epoch: int | None, opts: GridOptions
) -> DrawReport:
    run = _RUNS.get(run_path)
    if run is None:
        run = _RUNS[run_path] = open_run(run_path)
    return draw_patterns(run, Path(out), patterns, epoch, opts)


def resolve_workers(workers: int, n_patterns: int) -> int:
    if workers > 0:
        return workers
    if n_patterns < POOL_MIN_PATTERNS:
        return 1
    return max(1, min(os.cpu_count() or 1, n_patterns // 8))


def draw_grids(
    run: Run,
    out: Path,
    patterns: Sequence[int],
    epoch: int | None,
    opts: GridOptions,
    workers: int = 0,
    quiet: bool = False,
) -> DrawReport:
    """Grid pages for ``patterns``, in-process or over a spawn-started process pool."""
    total = DrawReport()
    n_workers = resolve_workers(workers, len(patterns))
    pieces = layout.split_work(patterns, n_workers * 4, max_size=64)
    bar = tqdm(
        total=len(patterns), unit="pattern", desc="render", disable=quiet, dynamic_ncols=True
    )
    try:
        if n_workers == 1:
            for piece in pieces:
                total.merge(draw_patterns(run, out, piece, epoch, opts))
                bar.update(len(piece))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = {
                    pool.submit(_worker_draw, str(run.path), str(out), piece, epoch, opts): len(
                        piece
                    )
                    for piece in pieces
                }
                try:
                    for fut in as_completed(futures):
                        total.merge(fut.result())
                        bar.update(futures[fut])
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # --strict: stop early
                    raise
    finally:
        bar.close()
    return total


def render(
    run_or_path: Run | str | Path,
    out: str | Path | None = None,
    grid: tuple[int, int] = (3, 3),
    cmap: str = "viridis",
    patterns: str | Sequence[int] = "",
    workers: int = 0,
    strict: bool = False,
    figsize: tuple[float, float] = (10.0, 10.0),
    dpi: int = 100,
    vector: str = "square",
    max_channels: int = 64,
    quiet: bool = False,
) -> RenderReport:
    """Draw a run's pictures into ``out`` (default ``RUN/render``)."""
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise RenderError(
            f"--cmap: unknown colormap {cmap!r}; expected a matplotlib colormap name such as viridis"
        )
    run = run_or_path if isinstance(run_or_path, Run) else open_run(run_or_path)
    out_dir = Path(out) if out else run.path / "render"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"cannot create the output folder {out_dir}: {exc.strerror}") from exc
    indices = (
        layout.parse_indices(patterns, run.num_patterns)
        if isinstance(patterns, str)
        else list(patterns)
    )
    opts = GridOptions(
        rows=grid[0],
        cols=grid[1],
        cmap=cmap,
        figsize=figsize,
        dpi=dpi,
        vector=vector,
        max_channels=max_channels,
        strict=strict,
    )
    report = RenderReport(out_dir)
    if run.bad_manifest_lines:
        report.problems.append(
            f"manifest lines {run.bad_manifest_lines} are malformed and were ignored"
        )
    epochs = run.epochs
    if not epochs:
        raise RenderError(f"run {run.path} holds no captured data yet; run `passage capture` first")
    last = epochs[-1]
    if run.is_training:
        from .training import complete_keys

        # A training killed in the middle of a record leaves it partial: draw the last whole one.
        last = (complete_keys(run) or [last])[-1]
    grids = draw_grids(run, out_dir, indices, last, opts, workers, quiet)
    report.pages += grids.pages
    report.problems.extend(grids.problems)
    report.damaged.update(grids.damaged)
    if run.is_training:
        from .training import render_training

        extra = render_training(run, out_dir, indices, opts, quiet=quiet)
        report.pages += extra.pages
        report.problems.extend(extra.problems)
    arch = place_architecture(run, out_dir)
    if arch is not None:
        report.files.append(arch)
    log.info("rendered %d page(s) into %s", report.pages, out_dir)
    return report
