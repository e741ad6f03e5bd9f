"""``passage analyze``: statistics, dead units, top patterns and CKA over a run."""

from __future__ import annotations

import argparse
import logging

from .. import config as cfgmod
from .common import add_dask, cluster, layers_left_out, load_config

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "analyze",
        help="statistics, dead units, top patterns and CKA over all of a run's patterns",
        parents=[after],
    )
    p.set_defaults(handler=cmd_analyze)
    p.add_argument("run", nargs="?", help="run folder (default: [capture] out of --config)")
    p.add_argument("--config", help="TOML config file (its [analyze] and [capture] out)")
    p.add_argument("--epoch", help="which epoch of a training run: a number or all (default)")
    p.add_argument("--labels", help=".npy file of one integer class per pattern")
    p.add_argument("--against", help="another run over the same patterns: cross-run CKA")
    p.add_argument("--top", type=int, help="patterns kept per channel (default 9)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.add_argument("--max-channels", type=int, help="channels drawn per sheet (default 64)")
    p.add_argument("--no-cka", action="store_true", help="skip the CKA matrices")
    p.add_argument(
        "--cka",
        choices=("auto", "exact", "sketch"),
        dest="cka_method",
        help="how CKA is computed: auto (default: exact while its state fits 1 GiB), exact, "
        "or sketch (randomized, for many or wide layers; error bound in docs/analysis.md)",
    )
    p.add_argument("--no-pictures", action="store_true", help="write the arrays only")
    add_dask(p)


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..analysis import analyze

    cfg = cfgmod.override(
        load_config(args.config),
        "analyze",
        epoch=args.epoch,
        labels=args.labels,
        against=args.against,
        top=args.top,
        workers=args.workers,
        max_channels=args.max_channels,
        cka=False if args.no_cka else None,
        cka_method=args.cka_method,
        pictures=False if args.no_pictures else None,
    )
    a = cfg.analyze
    run_dir = args.run or cfg.capture.out
    with cluster(cfg, args) as pool:
        report = analyze(
            run_dir,
            epoch=a.epoch,
            labels=a.labels or None,
            against=a.against or None,
            top=a.top,
            workers=a.workers,
            cka=a.cka,
            cka_method=a.cka_method,
            pictures=a.pictures,
            max_channels=a.max_channels,
            cmap=cfg.render.cmap,
            quiet=args.quiet,
            pool=pool,
        )
    if report.problems:
        return layers_left_out(report.problems, f"analyzed into {report.out}", run_dir)
    log.info(
        "analysis is in %s (%d file(s) computed, %d up to date, %d picture(s))",
        report.out,
        len(report.computed),
        len(report.reused),
        len(report.pictures),
    )
    return 0
