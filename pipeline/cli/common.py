"""Flags and helpers several commands share: layer selection, ``--unsafe``, ``--dask``, the
config file, "AxB" sizes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from .. import config as cfgmod
from ..config import Config

log = logging.getLogger(__name__)


def add_select(p: argparse.ArgumentParser) -> None:
    """The layer selection flags ([select]); capture and layers share them."""
    p.add_argument(
        "--select", choices=cfgmod.RULES, help=f"layer selection rule (default {cfgmod.RULES[0]})"
    )
    p.add_argument("--min-size", help="minimum HxW of the maps and seed rules, e.g. 15x15")
    p.add_argument("--min-axis", help="minimum size of each output axis, e.g. 8 or 8x8")
    p.add_argument("--include", action="append", help="keep only layers matching this name glob")
    p.add_argument("--exclude", action="append", help="drop layers matching this name glob")
    p.add_argument("--class", dest="classes", action="append", help="keep only this layer class")
    p.add_argument("--exclude-class", action="append", help="drop this layer class")


def add_unsafe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unsafe", action="store_true", help="allow unsafe deserialization (Lambda)")


def add_dask(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask cluster: tcp://HOST:PORT of a running scheduler, or local[:N] "
        "for N worker processes here (the workers must see the run folder at the same path)",
    )


def sizes(
    text: str | None, flag: str, count: int | None = None, minimum: int = 0, example: str = "15x15"
) -> tuple[int, ...] | None:
    """An "AxB" flag through the config's one parser; None when the flag is not given."""
    return None if text is None else cfgmod.parse_sizes(text, flag, count, minimum, example)


def layers_left_out(problems: list[str], done: str, run_dir: str) -> int:
    """The end of a stage that left layers out for damaged data files: the first problems as
    warnings, one summary line (``done``: what was written), exit status 1."""
    for line in problems[:20]:
        log.warning("%s", line)
    sys.stderr.write(
        f"passage: {done}; left out {len(problems)} layer(s) with damaged data files; run "
        f"`passage verify {run_dir}`\n"
    )
    return 1


def load_config(path: str | None) -> Config:
    return cfgmod.load(path) if path else Config()


def select_config(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with the selection flags (``add_select``) over its [select] table."""
    return cfgmod.override(
        cfg,
        "select",
        rule=args.select,
        min_size=sizes(args.min_size, "--min-size", count=2),
        min_axis=sizes(args.min_axis, "--min-axis", example="8x8"),
        include=args.include,
        exclude=args.exclude,
        classes=args.classes,
        exclude_classes=args.exclude_class,
    )


def cluster(cfg: Config, args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """The Dask pool ``--dask`` (or ``[dask] address``) names, for the command's length; a
    context yielding None without one (Dask is then not imported)."""
    cfg = cfgmod.override(cfg, "dask", address=args.dask)
    if not cfg.dask.address:
        return contextlib.nullcontext()
    from ..distributed import connect

    return connect(cfg.dask.address, timeout=cfg.dask.timeout)
