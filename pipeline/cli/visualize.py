"""``passage visualize``: what input each channel of a run's layers wants (feature
visualization) and where in its top patterns it looks (attribution)."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import config as cfgmod
from .common import add_unsafe, load_config, sizes

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "visualize",
        help="feature visualization of every channel, and attribution of its top patterns",
        parents=[after],
    )
    p.set_defaults(handler=cmd_visualize)
    p.add_argument("run", nargs="?", help="run folder (default: [capture] out of --config)")
    p.add_argument("--config", help="TOML config file (its [visualize] and [capture] out)")
    p.add_argument(
        "--layers",
        nargs="+",
        action="extend",
        metavar="GLOB",
        help="layer names or globs of the run's layers (default: all of them)",
    )
    p.add_argument(
        "--channels", help="channels of each layer: '0-15,20' or 'all' (default: the first 64)"
    )
    p.add_argument("--steps", type=int, help="optimization steps (default 512)")
    p.add_argument("--size", help="HxW of the optimized image, for a free-size image input")
    p.add_argument("--seed", type=int, help="seed of the optimization and noise (default 0)")
    p.add_argument("--lr", type=float, help="Adam's learning rate (default 0.05)")
    p.add_argument(
        "--epochs",
        help="a training run's epochs: all, last or '0,5,20' (default: up to 4 evenly spaced "
        "epochs whose weights were kept)",
    )
    p.add_argument(
        "--top",
        type=int,
        help="top patterns attributed per channel (default: the analysis' K, at most 9; 0: none)",
    )
    p.add_argument("--samples", type=int, help="SmoothGrad's noisy copies per pattern (32)")
    p.add_argument("--noise", type=float, help="SmoothGrad's sigma, a fraction of the range (0.15)")
    p.add_argument("--batch", type=int, help="channels optimized together (default: by memory)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="visualize again what was visualized with other settings",
    )
    p.add_argument("--no-pictures", action="store_true", help="write the arrays only")
    add_unsafe(p)


def cmd_visualize(args: argparse.Namespace) -> int:
    from ..capturing.visualize.runner import visualize

    cfg = cfgmod.override(
        load_config(args.config),
        "visualize",
        layers=args.layers,
        channels=args.channels,
        steps=args.steps,
        size=sizes(args.size, "--size", count=2, minimum=1, example="64x64"),
        seed=args.seed,
        lr=args.lr,
        epochs=args.epochs,
        top=args.top,
        samples=args.samples,
        noise=args.noise,
        batch=args.batch,
        overwrite=True if args.overwrite else None,
        pictures=False if args.no_pictures else None,
        unsafe=True if args.unsafe else None,
    )
    v = cfg.visualize
    run_dir = args.run or cfg.capture.out
    report = visualize(
        run_dir,
        layers=list(v.layers) or None,
        channels=v.channels or None,
        steps=v.steps,
        size=tuple(v.size) if v.size else None,  # type: ignore[arg-type]
        seed=v.seed,
        epochs=v.epochs or None,
        top=v.top,
        samples=v.samples,
        noise=v.noise,
        batch=v.batch or None,
        overwrite=v.overwrite,
        pictures=v.pictures,
        unsafe=v.unsafe or cfg.capture.unsafe,
        quiet=args.quiet,
        lr=v.lr,
    )
    sys.stderr.write(f"passage: {report.summary()}\n")
    log.info("visualizations are in %s/features", report.run)
    return 0
