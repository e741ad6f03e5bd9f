"""Render: pictures from a run's files alone (never imports TensorFlow).

``render(run_or_path, out)`` draws, for each pattern, grid pages of its layers; for runs with
epochs also evolution sheets, animations and statistics (see ``training``); and places the
architecture diagram. Pages are spread over a process pool sized to the cores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..errors import RenderError
from ..executors import WorkerPool
from ..store import Run, open_run
from . import layout
from .architecture import place_architecture
from .cells import DrawReport, GridOptions
from .pages import draw_patterns
from .pool import PieceFn, run_pieces

log = logging.getLogger(__name__)

__all__ = ["GridOptions", "RenderReport", "render"]


@dataclass
class RenderReport:
    out: Path
    pages: int = 0
    problems: list[str] = field(default_factory=list)  # one line per skipped cell or item
    damaged: dict[str, str] = field(default_factory=dict)  # data file -> what is wrong


def _grid_piece(
    run: Run,
    piece: list[int],
    out: Path,
    epoch: int | None,
    opts: GridOptions,
    pages: tuple[int, ...] | None = None,
) -> DrawReport:
    return draw_patterns(run, out, piece, epoch, opts, pages)


def _page_lanes(
    page_cells: list[list[int]], out: Path, epoch: int | None, opts: GridOptions, workers: int
) -> list[PieceFn]:
    """The pattern's pages cut into up to ``workers`` groups (``layout.page_groups``), one
    piece function each: a worker then builds the layouts of its own pages only."""
    groups = layout.page_groups([len(c) for c in page_cells], workers)
    if len(groups) == 1:
        return [partial(_grid_piece, out=out, epoch=epoch, opts=opts)]
    return [partial(_grid_piece, out=out, epoch=epoch, opts=opts, pages=g) for g in groups]


def draw_grids(
    run: Run,
    out: Path,
    patterns: Sequence[int],
    epoch: int | None,
    opts: GridOptions,
    workers: int = 0,
    quiet: bool = False,
    pool: WorkerPool | None = None,
) -> DrawReport:
    """Grid pages for ``patterns``, in-process, over a spawn-started process pool (sized by
    the pages to draw) or on a cluster (``pool``)."""
    fn = partial(_grid_piece, out=out, epoch=epoch, opts=opts)
    page_cells = layout.pages(len(run.input_records) + len(run.layers), opts.rows, opts.cols)
    lanes = partial(_page_lanes, page_cells, out, epoch, opts)
    return run_pieces(
        run,
        fn,
        patterns,
        workers,
        "render",
        quiet,
        per_pattern=len(page_cells),
        pool=pool,
        lanes=lanes,
    )


def _indices(run: Run, patterns: str | Sequence[int]) -> list[int]:
    """``patterns`` parsed; empty: every pattern the manifest holds data for. A run.json count
    beyond those (an unfinished capture, a damaged count) is one warning, never a plan."""
    if not isinstance(patterns, str):
        return list(patterns)
    if patterns.strip():
        return layout.parse_indices(patterns, run.num_patterns)
    held = run.patterns_in_manifest
    if run.num_patterns > held:
        log.warning(
            "run.json of %s counts %d pattern(s), its manifest holds data for %d: drawing "
            "those (rerun an unfinished capture to resume it)",
            run.path,
            run.num_patterns,
            held,
        )
    return list(range(min(run.num_patterns, held)))


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
    scale: str = "layer",
    quiet: bool = False,
    pool: WorkerPool | None = None,
) -> RenderReport:
    """Draw a run's pictures into ``out`` (default ``RUN/render``). ``scale``: the color scale
    of a channel mosaic, one for the layer ("layer") or one per channel ("channel"). ``pool``:
    where pages are drawn (default: processes here; ``pipeline.distributed`` for a cluster,
    whose workers must see ``out`` at the same path)."""
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise RenderError(
            f"cmap: unknown colormap {cmap!r}; expected a matplotlib colormap name such as viridis"
        )
    if scale not in ("layer", "channel"):
        raise RenderError(f"scale: expected 'layer' or 'channel', received {scale!r}")
    run = run_or_path if isinstance(run_or_path, Run) else open_run(run_or_path)
    out_dir = Path(out) if out else run.path / "render"
    if pool is not None and pool.remote:
        out_dir = out_dir.resolve()  # the workers' working folder is not ours
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"cannot create the output folder {out_dir}: {exc.strerror}") from exc
    opts = GridOptions(
        rows=grid[0],
        cols=grid[1],
        cmap=cmap,
        figsize=figsize,
        dpi=dpi,
        vector=vector,
        max_channels=max_channels,
        strict=strict,
        scale=scale,
    )
    report = RenderReport(out_dir)
    if run.bad_manifest_lines:
        report.problems.append(
            f"manifest lines {run.bad_manifest_lines} are malformed and were ignored"
        )
    epochs = run.epochs
    if not epochs:
        raise RenderError(f"run {run.path} holds no captured data yet; run `passage capture` first")
    indices = _indices(run, patterns)
    last = epochs[-1]
    if run.is_training:
        from .training.epochs import complete_keys

        # A training killed in the middle of a record leaves it partial: draw the last whole one.
        last = (complete_keys(run) or [last])[-1]
    grids = draw_grids(run, out_dir, indices, last, opts, workers, quiet, pool)
    report.pages += grids.pages
    report.problems.extend(grids.problems)
    report.damaged.update(grids.damaged)
    if run.is_training:
        from .training.epochs import render_training

        extra = render_training(
            run, out_dir, indices, opts, quiet=quiet, workers=workers, pool=pool
        )
        report.pages += extra.pages
        report.problems.extend(extra.problems)
    place_architecture(run, out_dir)
    log.info("rendered %d page(s) into %s", report.pages, out_dir)
    return report
