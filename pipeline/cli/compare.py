"""``passage compare``: a run's layers against neural data (reference RDMs, responses)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import numpy as np

from .. import config as cfgmod
from .common import add_dask, cluster, layers_left_out, load_config

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "compare",
        help="RSA and encoding models of every layer (and epoch) against neural data",
        parents=[after],
    )
    p.set_defaults(handler=cmd_compare)
    p.add_argument("run", nargs="?", help="run folder (default: [capture] out of --config)")
    p.add_argument("--config", help="TOML config file (its [compare] and [capture] out)")
    p.add_argument(
        "--rdms",
        action="append",
        metavar="[REGION=]FILE",
        help="reference RDMs: .npy, .mat (RSA toolbox) or .h5 (rsatoolbox); repeat for more "
        "subjects, or name each file after a brain region (V1=v1.mat)",
    )
    p.add_argument(
        "--responses",
        action="append",
        metavar="[REGION=]FILE",
        help="responses, conditions x voxels (or repeats x conditions x voxels): .npy, .npz, "
        ".mat or .h5; an RDM and encoding models",
    )
    p.add_argument("--name", help="RUN/compare/NAME (default: the first file's stem)")
    p.add_argument(
        "--distance", help="of the model RDMs: correlation (default), euclidean or cosine"
    )
    p.add_argument(
        "--method",
        help="RDM comparison: tau-a (default), spearman, pearson, cosine, corr_cov, cosine_cov",
    )
    p.add_argument("--epoch", help="which epoch of a training run: a number or all (default)")
    p.add_argument("--bootstrap", type=int, help="bootstrap samples of the intervals (1000)")
    p.add_argument("--seed", type=int, help="seed of the bootstrap and folds (default 0)")
    p.add_argument("--conditions", help=".npy of the run's pattern indices, one per condition")
    p.add_argument("--labels", help=".npy of one integer per condition (groups the pictures)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.add_argument("--no-pictures", action="store_true", help="write the arrays only")
    add_dask(p)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..compare import compare

    cfg = cfgmod.override(
        load_config(args.config),
        "compare",
        rdms=args.rdms,
        responses=args.responses,
        name=args.name,
        distance=args.distance,
        method=args.method,
        epoch=args.epoch,
        bootstrap=args.bootstrap,
        seed=args.seed,
        conditions=args.conditions,
        labels=args.labels,
        workers=args.workers,
        pictures=False if args.no_pictures else None,
    )
    c = cfg.compare
    run_dir = args.run or cfg.capture.out
    with cluster(cfg, args) as pool:
        report = compare(
            run_dir,
            rdms=c.rdms,
            responses=c.responses,
            name=c.name or None,
            distance=c.distance,
            method=c.method,
            epoch=c.epoch,
            bootstrap=c.bootstrap,
            seed=c.seed,
            conditions=c.conditions or None,
            labels=c.labels or None,
            workers=c.workers,
            pictures=c.pictures,
            quiet=args.quiet,
            pool=pool,
        )
    for name, result in report.comparisons.items():
        sys.stderr.write(f"passage: {summary_line(name, result)}\n")
    if report.regions is not None:
        from ..compare.regions import summary

        sys.stderr.write(f"passage: regions: {summary(report.regions)}\n")
    if report.problems:
        done = f"compared into {report.run / 'compare'}"
        return layers_left_out(report.problems, done, run_dir)
    log.info("comparisons are in %s/compare", report.run)
    return 0


def _number(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.3f}"


def summary_line(name: str, result: dict[str, Any]) -> str:
    """``v1: best layer conv2, tau-a 0.412 [0.33, 0.47], best in 87 % of samples; noise
    ceiling 0.45 to 0.62`` (the last epoch of a training run)."""
    layers = result["layers"]
    training = "epochs" in result
    best = result["best_layer"][-1] if training else result["best_layer"]
    at = f" at epoch {result['epochs'][-1]}" if training else ""
    if not best:
        return f"{name}: no layer could be compared{at} (every score is NaN)"
    i = layers.index(best)
    score = (result["score"][-1] if training else result["score"])[i]
    lo, hi = (result["ci"][-1] if training else result["ci"])[i]
    frac = result["best_layer_p"][-1] if training else result["best_layer_p"]
    text = f"{name}: best layer {best}{at}, {result['method']} {_number(score)}"
    if np.isfinite(lo):
        text += f" [{_number(lo)}, {_number(hi)}]"
    if np.isfinite(frac):
        text += f", best in {frac:.0%} of bootstrap samples"
    low, up = result["noise_ceiling"]
    if np.isfinite(low):
        text += f"; noise ceiling {_number(low)} to {_number(up)}"
    if "encoding_median" in result:
        enc = result["encoding_median"][-1] if training else result["encoding_median"]
        text += f"; encoding median r {_number(float(np.nanmax(enc)))} (best layer)"
    return text
