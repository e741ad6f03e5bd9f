"""Render the pictures of a training run (records keyed by epoch or step):

- ``evolution/pattern-<p>/<layer dir>.png``: per watched pattern and layer, one cell per record;
- ``animation/pattern-<p>.gif`` (and ``.mp4`` with ffmpeg): the pattern's whole passage, one
  frame per record;
- ``stats.png``: per layer over the records, mean / std / fraction of zeros, beside the loss and
  accuracy curves.

Data files are read one at a time (memory-mapped), in record order, and only the rows of the
patterns being drawn are kept, in groups that fit ``MEMORY_BUDGET``. Color scales come from the
manifest's min/max, so they cost no extra pass over the data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import PassageError, RenderError
from ...executors import WorkerPool
from ...store import Run
from ...store.manifest import complete_records
from .. import layout, timeline
from ..cells import DrawReport, GridOptions
from ..pool import run_pieces
from .animation import Animator, ffmpeg_available
from .evolution import EvolutionPainter
from .stats import draw_stats

log = logging.getLogger(__name__)

MEMORY_BUDGET = 256 << 20
Images = dict[tuple[str, int, int], np.ndarray]


def complete_keys(run: Run) -> list[int]:
    """Records that hold every layer for every pattern (a training killed in the middle of a
    record leaves that record partial; it is left out)."""
    keys = complete_records(run.entries, run.layers, run.num_patterns)
    for key in sorted(set(k for k in run.epochs if k is not None) - set(keys)):
        log.info("record %s of %s is incomplete (interrupted); it is not drawn", key, run.path)
    return keys


def gather(
    run: Run,
    keys: Sequence[int],
    patterns: Sequence[int],
    opts: GridOptions,
    report: DrawReport,
    stats: dict[tuple[str, int], timeline.LayerStats] | None = None,
) -> Images:
    """Images of ``patterns`` for every (layer, record), reading one data file at a time; with
    ``stats``, also accumulate each (layer, record)'s statistics over all watched patterns."""
    images: Images = {}
    wanted = sorted(patterns)
    for key in keys:
        for layer in run.layers:
            for entry in run.chunks(layer, key):
                end = entry.first + entry.count
                rows = [p for p in wanted if entry.first <= p < end]
                if not rows and stats is None:
                    continue
                try:
                    arr = run.load(entry, check=True)  # size and CRC-32, as grid pages
                    if stats is not None:
                        stats.setdefault((layer, key), timeline.LayerStats()).add(arr)
                    for p in rows:
                        images[(layer, key, p)] = layout.to_image(
                            np.asarray(arr[p - entry.first], np.float32),
                            opts.vector,
                            opts.max_channels,
                        )
                except PassageError as exc:
                    if opts.strict:
                        raise RenderError(f"{entry.path}: {exc}") from exc
                    report.problems.append(f"{entry.path}: {exc}")
    return images


def draw_training_patterns(
    run: Run, patterns: list[int], out: Path, keys: Sequence[int], opts: GridOptions
) -> DrawReport:
    """Evolution sheets and the animation of each pattern in ``patterns`` (one pool piece)."""
    report = DrawReport()
    layers = run.layers
    tl = timeline.Timeline.from_run(run.info, run.metrics())
    recorded = set(keys)
    limits = timeline.layer_limits((e for e in run.entries if e.epoch in recorded), layers)
    labels = [tl.label(k) for k in keys]
    per_pattern = 4 * len(keys) * sum(math.prod(rec.shape) for rec in run.layer_records)
    groups = timeline.pattern_groups(len(patterns), per_pattern, MEMORY_BUDGET) or [range(0)]
    evolution = EvolutionPainter(len(keys), opts)
    titles = [layout.cell_title(rec.name, rec.shape) for rec in run.layer_records]
    animator = Animator(titles, [limits[name] for name in layers], opts.cmap)
    mp4 = ffmpeg_available()
    try:
        for group in groups:
            chosen = [patterns[i] for i in group]
            images = gather(run, keys, chosen, opts, report)
            names = {p: timeline.pattern_label(run.info, p) for p in chosen}
            # layer by layer: a layer's sheets share one layout, so the painter's drawn page
            # is reused from pattern to pattern
            for rec, title in zip(run.layer_records, titles, strict=True):
                for p in chosen:
                    evolution.draw(
                        out / "evolution" / f"pattern-{p}",
                        rec.dir,
                        f"{names[p]} · {title}",
                        labels,
                        [images.get((rec.name, k, p)) for k in keys],
                        limits[rec.name],
                    )
                    report.pages += 1
            for p in chosen:
                name = names[p]
                frames = [[images.get((layer, k, p)) for layer in layers] for k in keys]
                animator.write(
                    out / "animation" / f"pattern-{p}.gif",
                    frames,
                    [tl.frame_title(name, k) for k in keys],
                    mp4=mp4,
                )
                report.pages += 1
    finally:
        evolution.close()
        animator.close()
    return report


def render_training(
    run: Run,
    out: Path,
    indices: Sequence[int],
    opts: GridOptions,
    quiet: bool = False,
    workers: int = 0,
    pool: WorkerPool | None = None,
) -> DrawReport:
    """Draw evolution sheets, animations and stats.png of a training run into ``out``.

    The statistics take one pass over the data here; the per-pattern pictures are spread over
    the process pool (a few patterns already pay for it: each costs ~1 s of drawing)."""
    report = DrawReport()
    keys = complete_keys(run)
    if not keys:
        report.problems.append(f"run {run.path} holds no complete record yet")
        return report
    stats: dict[tuple[str, int], timeline.LayerStats] = {}
    gather(run, keys, [], opts, report, stats)
    fn = partial(draw_training_patterns, out=out, keys=keys, opts=opts)
    pictures = run_pieces(
        run, fn, indices, workers, "evolution", quiet, max_piece=4, min_pages=4, pool=pool
    )
    report.pages += pictures.pages
    # a damaged file is met by the statistics pass and again by the pictures: report it once
    report.problems = list(dict.fromkeys(report.problems + pictures.problems))
    tl = timeline.Timeline.from_run(run.info, run.metrics())
    draw_stats(out / "stats.png", run.layers, keys, stats, tl, dpi=opts.dpi)
    report.pages += 1
    return report
