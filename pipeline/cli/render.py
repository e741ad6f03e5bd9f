"""``passage render``: draw a captured run's pictures."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import config as cfgmod
from .common import add_dask, cluster, load_config, sizes

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser("render", help="draw a captured run's pictures", parents=[after])
    p.set_defaults(handler=cmd_render)
    p.add_argument("run", nargs="?", help="run folder (default: [capture] out of --config)")
    p.add_argument("--config", help="TOML config file (its [render] and [capture] out)")
    p.add_argument("--out", help="output folder (default RUN/render)")
    p.add_argument("--grid", help="cells per page as ROWSxCOLS (default 3x3)")
    p.add_argument("--cmap", help="matplotlib colormap (default viridis)")
    p.add_argument("--patterns", dest="render_patterns", help="which patterns, e.g. 0,3,5-9")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.add_argument("--vector", choices=("square", "strip"), help="how (N,) vectors are drawn")
    p.add_argument("--max-channels", type=int, help="channel maps per mosaic (default 64)")
    p.add_argument(
        "--scale",
        choices=("layer", "channel"),
        help="color scale of a channel mosaic: one for the layer (default) or one per channel",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first damaged file")
    add_dask(p)


def cmd_render(args: argparse.Namespace) -> int:
    from ..rendering import render

    cfg = load_config(args.config)
    cfg = cfgmod.override(
        cfg,
        "render",
        out=args.out,
        grid=sizes(args.grid, "--grid", count=2, minimum=1, example="3x3"),
        cmap=args.cmap,
        patterns=args.render_patterns,
        workers=args.workers,
        vector=args.vector,
        max_channels=args.max_channels,
        scale=args.scale,
    )
    run_dir = args.run or cfg.capture.out
    r = cfg.render
    with cluster(cfg, args) as pool:
        report = render(
            run_dir,
            r.out or None,
            grid=r.grid,
            cmap=r.cmap,
            patterns=r.patterns,
            workers=r.workers,
            strict=args.strict,
            figsize=r.figsize,
            dpi=r.dpi,
            vector=r.vector,
            max_channels=r.max_channels,
            scale=r.scale,
            quiet=args.quiet,
            pool=pool,
        )
    if report.problems:
        for what in list(report.damaged.values())[:20]:
            log.warning("%s", what)
        per_file = tuple(f"({path})" for path in report.damaged)  # said once per file above
        other = [p for p in report.problems if not p.endswith(per_file)]
        for line in other[:20]:
            log.warning("%s", line)
        sys.stderr.write(
            f"passage: rendered {report.pages} page(s) into {report.out}; skipped "
            f"{len(report.problems)} damaged cell(s) or item(s), drawn as marked cells "
            f"({len(report.damaged)} damaged data file(s)); run `passage verify {run_dir}`\n"
        )
        return 1
    log.info("pictures are in %s", report.out)
    return 0
