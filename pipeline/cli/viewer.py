"""``passage serve | report | export``: look at runs in a browser, as a static folder, or in
TensorBoard."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import config as cfgmod
from .common import load_config

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    add_serve(sub, after)
    add_report(sub, after)
    add_export(sub, after)


def add_serve(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", help="look at runs in the browser (a local, read-only web server)", parents=[after]
    )
    p.set_defaults(handler=cmd_serve)
    p.add_argument(
        "run", nargs="*", metavar="RUN", help="run folders (default: [capture] out of --config)"
    )
    p.add_argument("--config", help="TOML config file (its [capture] out)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: a free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other address requires a token)",
    )
    p.add_argument(
        "--token",
        help="the token to require (default: a random one, off the loopback; printed in the URL)",
    )
    p.add_argument(
        "--no-token",
        action="store_true",
        help="require no token off the loopback (a warning: anyone who can reach it can read)",
    )


def add_report(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        help="the viewer as a static folder that opens from file:// (no server)",
        parents=[after],
    )
    p.set_defaults(handler=cmd_report)
    p.add_argument("run", nargs="+", help="run folder(s), shown side by side")
    p.add_argument("--out", required=True, help="output folder (open OUT/index.html)")
    p.add_argument("--patterns", default="0-99", help="which patterns, e.g. 0,3,5-9 (default 0-99)")
    p.add_argument(
        "--max-mb", type=float, default=200.0, help="refuse a report above this size (default 200)"
    )


def add_export(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export", help="a run in another tool's format: TensorBoard event files", parents=[after]
    )
    p.set_defaults(handler=cmd_export)
    p.add_argument("format", choices=("tensorboard",), help="what to write: tensorboard")
    p.add_argument("run", help="run folder")
    p.add_argument("--logdir", required=True, help="TensorBoard log folder to write into")
    p.add_argument("--patterns", default="0-9", help="which patterns, e.g. 0,3,5-9 (default 0-9)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colormap (default viridis)")


def cmd_serve(args: argparse.Namespace) -> int:
    from ..viewer import serve
    from ..viewer.server import check_token

    if not 0 <= args.port <= 65535:
        raise cfgmod.ConfigError(f"--port must be 0 to 65535; received {args.port}")
    if args.token is not None and args.no_token:
        raise cfgmod.ConfigError("--token and --no-token contradict each other; give one of them")
    if args.token is not None:
        check_token(args.token, "--token")
    runs = args.run or [load_config(args.config).capture.out]
    serve(
        [Path(r) for r in runs],
        host=args.host,
        port=args.port,
        quiet=args.quiet,
        token=args.token,
        require_token=False if args.no_token else None,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..viewer.static_report import build_report, size_text

    summary = build_report(
        args.run, args.out, patterns=args.patterns, max_mb=args.max_mb, quiet=args.quiet
    )
    log.info(
        "report of %d pattern(s) in %s (%d data files, %s): open %s",
        len(summary.patterns),
        summary.out,
        summary.files,
        size_text(summary.bytes),
        summary.out / "index.html",
    )
    if summary.damaged:
        sys.stderr.write(
            f"passage: wrote {len(summary.damaged)} damaged cell(s) into {summary.out}; run "
            f"`passage verify` on the run(s)\n"
        )
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..viewer.tensorboard import export_tensorboard

    summary = export_tensorboard(
        args.run, args.logdir, patterns=args.patterns, cmap=args.cmap, quiet=args.quiet
    )
    log.info(
        "wrote %d image(s), %d histogram(s), %d scalar(s) into %s: tensorboard --logdir %s",
        summary.images,
        summary.histograms,
        summary.scalars,
        summary.logdir,
        summary.logdir,
    )
    if summary.damaged:
        sys.stderr.write(
            f"passage: left out {len(summary.damaged)} damaged data file(s); run "
            f"`passage verify {args.run}`\n"
        )
        return 1
    return 0
