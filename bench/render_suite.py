"""Render figures: grids/s against the article's render loop (same run, layers, grid, figure
size and dpi), and peak RSS growth with the number of patterns."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipeline.capturing.stream import capture
from pipeline.rendering import render
from pipeline.store import Run

from .baselines import article_render
from .common import capture_config, child_env, passage_cmd
from .figures import Figure
from .measure import interleaved, peak_rss, seconds
from .sizes import Sizes

log = logging.getLogger(__name__)


def render_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    from .cnn_pages import cnn_page_figures
    from .render_command import command_figures

    n = max(sizes.render, sizes.article_render, *sizes.render_rss)
    run = capture(capture_config(tmp / "render-run", n, sizes.batch_size), quiet=True)
    return [
        _throughput(run, sizes, tmp),
        _rss(run, sizes, tmp),
        *cnn_page_figures(sizes, tmp),
        *command_figures(sizes, tmp),
    ]


def _throughput(run: Run, sizes: Sizes, tmp: Path) -> Figure:
    out = tmp / "render-out"

    def article() -> float:
        shutil.rmtree(out, ignore_errors=True)
        elapsed = article_render(run, out, range(sizes.article_render))
        shutil.rmtree(out, ignore_errors=True)
        return elapsed

    def ours() -> float:
        shutil.rmtree(out, ignore_errors=True)
        elapsed = seconds(
            lambda: render(run, out, grid=(2, 2), patterns=list(range(sizes.render)), quiet=True)
        )
        shutil.rmtree(out, ignore_errors=True)
        return elapsed

    log.info("render: %d x (article, ours)", sizes.repeats)
    article()
    med = interleaved({"article": article, "ours": ours}, sizes.repeats)
    base_rate = sizes.article_render / med["article"]
    ours_rate = sizes.render / med["ours"]
    return Figure(
        "render grids/s / article's render loop (2x2, 10x10 in, 100 dpi)",
        base_rate,
        ours_rate,
        "grids/s",
        ours_rate / base_rate,
        (">=", 20),
        f"ours: {sizes.render} grids over the default process pool (pool start-up included); "
        f"article: {sizes.article_render} grids in one process",
    )


def _rss(run: Run, sizes: Sizes, tmp: Path) -> Figure:
    peaks = []
    for n in sizes.render_rss:
        out = tmp / f"render-rss-{n}"
        cmd = passage_cmd(
            "render", str(run.path), "--out", str(out), "--grid", "2x2", "--patterns", f"0-{n - 1}"
        )
        log.info("render: peak RSS of %d patterns in a child process tree", n)
        peak, _ = peak_rss(cmd, env=child_env())
        peaks.append(peak)
        shutil.rmtree(out, ignore_errors=True)
    small, large = sizes.render_rss
    return Figure(
        f"render peak RSS, {large:,} / {small:,} patterns",
        peaks[0] / 2**20,
        peaks[1] / 2**20,
        "MiB",
        peaks[1] / peaks[0],
        ("<=", 1.15),
        "RSS summed over the render process and its workers",
    )
