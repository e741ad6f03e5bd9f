"""``passage layers | verify | info``: look at a model's layers or a run, writing nothing."""

from __future__ import annotations

import argparse
import sys

from ..capturing.framework import use_tensorflow_backend
from .common import add_select, add_unsafe, load_config, select_config


def add_layers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "layers",
        help="list a model's layers and which selection rules pick them (writes nothing)",
        parents=[after],
    )
    p.set_defaults(handler=cmd_layers)
    p.add_argument(
        "model",
        nargs="?",
        help="model spec: file.keras, module:function or builtin:NAME "
        "(default: [capture] model of --config)",
    )
    p.add_argument("--config", help="TOML config file (its [capture] model and [select])")
    add_select(p)
    add_unsafe(p)


def add_run_checks(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    """``verify`` and ``info``: one run folder each."""
    for name, text, handler in (
        ("verify", "check every data file against the manifest", cmd_verify),
        ("info", "summarize a run", cmd_info),
    ):
        p = sub.add_parser(name, help=text, parents=[after])
        p.set_defaults(handler=handler)
        p.add_argument("run", help="run folder")


def cmd_layers(args: argparse.Namespace) -> int:
    use_tensorflow_backend()
    from ..capturing.listing import layer_table
    from ..capturing.models import load_model
    from ..capturing.probe import layer_infos

    cfg = select_config(load_config(args.config), args)
    model = load_model(args.model or cfg.capture.model, unsafe=args.unsafe or cfg.capture.unsafe)
    sys.stdout.write(layer_table(layer_infos(model), cfg.select) + "\n")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..store.verify import verify_run

    return verify_run(args.run)


def cmd_info(args: argparse.Namespace) -> int:
    from ..store.verify import run_info

    return run_info(args.run)
