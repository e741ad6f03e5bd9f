"""Render figures of a real CNN's pages: Keras Applications MobileNetV2 (random weights,
96x96, every layer captured) drawn page by page in one process, against the article's
model's pages drawn the same way in the same run (on render's default 3x3 grid and on the
article's example 2x2 grid), and against matplotlib's ``PagePainter`` drawing the same cells
(the path mosaic pages took before they went through the raster painter)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from pipeline.capturing.stream import capture
from pipeline.config import SelectConfig
from pipeline.rendering.grids import GridOptions
from pipeline.rendering.pages import draw_patterns
from pipeline.store import open_run

from .baselines import article_render_pages
from .common import capture_config
from .figures import Figure
from .measure import interleaved, seconds
from .sizes import Sizes

log = logging.getLogger(__name__)

MODEL = "bench.models:mobilenet_v2"


def article_loop(
    run_dir: Path, out: Path, patterns: int, pages: dict[str, int]
) -> Callable[[], float]:
    """The article's render loop over the same run's cells (``baselines.article_render_pages``)."""

    def measure() -> float:
        shutil.rmtree(out, ignore_errors=True)
        elapsed, pages["cnn article loop"] = article_render_pages(
            open_run(run_dir), out, range(patterns)
        )
        shutil.rmtree(out, ignore_errors=True)
        return elapsed

    return measure


def cnn_page_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    select = SelectConfig(rule="all", include=sizes.cnn_pages_include)
    cnn = capture(
        capture_config(tmp / "cnn-pages-run", sizes.cnn_pages, 0, model=MODEL, select=select),
        quiet=True,
    ).path
    seed = capture(capture_config(tmp / "seed-pages-run", sizes.seed_pages, 0), quiet=True).path
    out = tmp / "pages-out"
    pages: dict[str, int] = {}

    def timed(name: str, run_dir: Path, patterns: int, opts: GridOptions) -> Callable[[], float]:
        def measure() -> float:
            shutil.rmtree(out, ignore_errors=True)
            run = open_run(run_dir)  # a fresh reader: its files are checked as render does
            report = []
            elapsed = seconds(
                lambda: report.append(draw_patterns(run, out, range(patterns), None, opts))
            )
            pages[name] = report[0].pages
            shutil.rmtree(out, ignore_errors=True)
            return elapsed

        return measure

    grid3, grid2 = GridOptions(), GridOptions(rows=2, cols=2)
    runs = {
        "seed 3x3": timed("seed 3x3", seed, sizes.seed_pages, grid3),
        "cnn 3x3": timed("cnn 3x3", cnn, sizes.cnn_pages, grid3),
        "seed 2x2": timed("seed 2x2", seed, sizes.seed_pages, grid2),
        "cnn 2x2": timed("cnn 2x2", cnn, sizes.cnn_pages, grid2),
        "cnn matplotlib": timed(
            "cnn matplotlib", cnn, sizes.cnn_pages_mpl, GridOptions(raster=False)
        ),
        "cnn article loop": article_loop(cnn, out, sizes.cnn_pages_mpl, pages),
    }
    log.info("render: CNN pages, %d x %d (after one warm-up each)", sizes.repeats, len(runs))
    for measure in runs.values():  # each page layout drawn once in this process
        measure()
    med = interleaved(runs, sizes.repeats)
    rate = {name: pages[name] / med[name] for name in runs}
    what = f"MobileNetV2 96x96, {len(open_run(cnn).layers)} layers"
    how = "page layouts drawn before timing; data files checked as render does"
    figures = [
        Figure(
            f"render pages/s: {what} (3x3, render's default) / the article's pages (builtin:seed, "
            "2x2 as configs/seed.toml draws them), one process",
            rate["seed 2x2"],
            rate["cnn 3x3"],
            "pages/s",
            rate["cnn 3x3"] / rate["seed 2x2"],
            (">=", 0.5),
            f"{pages['cnn 3x3']} CNN pages, {pages['seed 2x2']} article pages; {how}",
        ),
        Figure(
            f"render pages/s: {what} / builtin:seed (both on the 3x3 default grid, one process)",
            rate["seed 3x3"],
            rate["cnn 3x3"],
            "pages/s",
            rate["cnn 3x3"] / rate["seed 3x3"],
            None,
            f"{pages['cnn 3x3']} CNN pages ({sizes.cnn_pages} patterns), "
            f"{pages['seed 3x3']} seed pages; {how}",
        ),
        Figure(
            "same, the article's 2x2 grid",
            rate["seed 2x2"],
            rate["cnn 2x2"],
            "pages/s",
            rate["cnn 2x2"] / rate["seed 2x2"],
            None,
            f"{pages['cnn 2x2']} CNN pages, {pages['seed 2x2']} seed pages",
        ),
        Figure(
            f"render pages/s: {what}, raster / matplotlib PagePainter (same cells, 3x3)",
            rate["cnn matplotlib"],
            rate["cnn 3x3"],
            "pages/s",
            rate["cnn 3x3"] / rate["cnn matplotlib"],
            None,
            f"matplotlib: {pages['cnn matplotlib']} pages, its figure drawn once per page "
            "layout, then images, labels and titles blitted",
        ),
        Figure(
            f"render pages/s: {what}, raster / the article's render loop (same cells, 3x3)",
            rate["cnn article loop"],
            rate["cnn 3x3"],
            "pages/s",
            rate["cnn 3x3"] / rate["cnn article loop"],
            None,
            f"article: {pages['cnn article loop']} pages, a new plt.subplots(3, 3) per page, "
            "imshow + set_title per cell, savefig, close",
        ),
    ]
    return figures
