"""``passage`` command line: capture, render, analyze, layers, serve, report, export,
verify, info (every flag: docs/cli.md).

Exit status 0 on success; a user error prints one line on stderr (no traceback) and exits 2;
a render that had to skip damaged data exits 1. Flags override the config file. ``-q`` and
``-v`` are accepted before and after the subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .config import Config
from .errors import PassageError

log = logging.getLogger("pipeline")


class _Parser(argparse.ArgumentParser):
    """argparse that raises our ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise cfgmod.ConfigError(f"{self.prog}: {message} (see --help)")


def _add_select(p: argparse.ArgumentParser) -> None:
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


def _add_unsafe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unsafe", action="store_true", help="allow unsafe deserialization (Lambda)")


def _add_dask(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask cluster: tcp://HOST:PORT of a running scheduler, or local[:N] "
        "for N worker processes here (the workers must see the run folder at the same path)",
    )


def _add_capture(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "capture", help="pass patterns through a model and store layer outputs", parents=[after]
    )
    p.add_argument("--config", help="TOML config file (flags override it)")
    p.add_argument("--model", help="model spec: file.keras, module:function or builtin:NAME")
    p.add_argument(
        "--patterns",
        help="pattern spec: file.npy, file.npz[:key], IMAGE_FOLDER/, module:function, "
        "random:N[:SEED]; several inputs: an .npz with one key per input, or one spec per "
        "input separated by commas",
    )
    p.add_argument("--out", help="run folder to write")
    p.add_argument("--format", choices=cfgmod.FORMATS, help="data file format (default npy)")
    p.add_argument("--dtype", choices=cfgmod.DTYPES, help="stored float type (default float32)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="patterns per forward pass and data file (default 0: by --batch-mb)",
    )
    p.add_argument(
        "--batch-mb",
        type=int,
        help="with batch size 0, the largest power of two whose captured outputs fit in this "
        "many MiB (default 64)",
    )
    p.add_argument(
        "--limit", type=int, help="capture only the first N patterns (needed for endless datasets)"
    )
    _add_select(p)
    p.add_argument(
        "--keep-inputs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store the model's inputs with the run; render draws them first (default: only "
        "for image-folder patterns)",
    )
    p.add_argument("--no-architecture", action="store_true", help="do not draw the model")
    p.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    _add_unsafe(p)
    p.add_argument(
        "--buffered-io",
        action="store_true",
        help="write large data files through the page cache instead of direct I/O",
    )
    p.add_argument("--fsync", action="store_true", help="fsync every file (survives power loss)")
    _add_dask(p)


def _add_render(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser("render", help="draw a captured run's pictures", parents=[after])
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
    _add_dask(p)


def _add_analyze(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "analyze",
        help="statistics, dead units, top patterns and CKA over all of a run's patterns",
        parents=[after],
    )
    p.add_argument("run", nargs="?", help="run folder (default: [capture] out of --config)")
    p.add_argument("--config", help="TOML config file (its [analyze] and [capture] out)")
    p.add_argument("--epoch", help="which epoch of a training run: a number or all (default)")
    p.add_argument("--labels", help=".npy file of one integer class per pattern")
    p.add_argument("--against", help="another run over the same patterns: cross-run CKA")
    p.add_argument("--top", type=int, help="patterns kept per channel (default 9)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.add_argument("--max-channels", type=int, help="channels drawn per sheet (default 64)")
    p.add_argument("--no-cka", action="store_true", help="skip the CKA matrices")
    p.add_argument("--no-pictures", action="store_true", help="write the arrays only")
    _add_dask(p)


def _add_layers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "layers",
        help="list a model's layers and which selection rules pick them (writes nothing)",
        parents=[after],
    )
    p.add_argument(
        "model",
        nargs="?",
        help="model spec: file.keras, module:function or builtin:NAME "
        "(default: [capture] model of --config)",
    )
    p.add_argument("--config", help="TOML config file (its [capture] model and [select])")
    _add_select(p)
    _add_unsafe(p)


def _add_serve(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", help="look at runs in the browser (a local, read-only web server)", parents=[after]
    )
    p.add_argument(
        "run", nargs="*", metavar="RUN", help="run folders (default: [capture] out of --config)"
    )
    p.add_argument("--config", help="TOML config file (its [capture] out)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: a free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other address logs a warning)",
    )


def _add_report(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        help="the viewer as a static folder that opens from file:// (no server)",
        parents=[after],
    )
    p.add_argument("run", nargs="+", help="run folder(s), shown side by side")
    p.add_argument("--out", required=True, help="output folder (open OUT/index.html)")
    p.add_argument("--patterns", default="0-99", help="which patterns, e.g. 0,3,5-9 (default 0-99)")
    p.add_argument(
        "--max-mb", type=float, default=200.0, help="refuse a report above this size (default 200)"
    )


def _add_export(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export", help="a run in another tool's format: TensorBoard event files", parents=[after]
    )
    p.add_argument("format", choices=("tensorboard",), help="what to write: tensorboard")
    p.add_argument("run", help="run folder")
    p.add_argument("--logdir", required=True, help="TensorBoard log folder to write into")
    p.add_argument("--patterns", default="0-9", help="which patterns, e.g. 0,3,5-9 (default 0-9)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colormap (default viridis)")


def _add_log_flags(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars, warnings only",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="passage", description="See how patterns pass through a Keras model, layer by layer."
    )
    _add_log_flags(parser, False)
    # The same flags after the subcommand. SUPPRESS: a subcommand's parser sets them only when
    # they are given, so its default never overwrites a -q/-v given before the subcommand.
    after = argparse.ArgumentParser(add_help=False)
    _add_log_flags(after, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_capture(sub, after)
    _add_render(sub, after)
    _add_analyze(sub, after)
    _add_layers(sub, after)
    _add_serve(sub, after)
    _add_report(sub, after)
    _add_export(sub, after)
    for name, text in (
        ("verify", "check every data file against the manifest"),
        ("info", "summarize a run"),
    ):
        p = sub.add_parser(name, help=text, parents=[after])
        p.add_argument("run", help="run folder")
    return parser


def command_arguments() -> dict[str, list[argparse.Action]]:
    """Each command line ('passage', 'passage capture', ...) -> its arguments, help and the
    subcommand choice left out (tests/test_cli_docs.py checks them against docs/cli.md)."""
    parser = build_parser()
    parsers = {"passage": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.update({f"passage {name}": p for name, p in action.choices.items()})
    skip = (argparse._HelpAction, argparse._SubParsersAction)
    return {name: [a for a in p._actions if not isinstance(a, skip)] for name, p in parsers.items()}


def _sizes(
    text: str | None, flag: str, count: int | None = None, minimum: int = 0, example: str = "15x15"
) -> tuple[int, ...] | None:
    """An "AxB" flag through the config's one parser; None when the flag is not given."""
    return None if text is None else cfgmod.parse_sizes(text, flag, count, minimum, example)


def load_config(path: str | None) -> Config:
    return cfgmod.load(path) if path else Config()


def capture_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    cfg = cfgmod.override(
        cfg,
        "capture",
        model=args.model,
        patterns=args.patterns,
        out=args.out,
        format=args.format,
        dtype=args.dtype,
        batch_size=args.batch_size,
        batch_mb=args.batch_mb,
        limit=args.limit,
        architecture=False if args.no_architecture else None,
        overwrite=True if args.overwrite else None,
        unsafe=True if args.unsafe else None,
        direct_io=False if args.buffered_io else None,
        fsync=True if args.fsync else None,
        keep_inputs=args.keep_inputs,
    )
    return select_config(cfg, args)


def select_config(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with the selection flags (``_add_select``) over its [select] table."""
    return cfgmod.override(
        cfg,
        "select",
        rule=args.select,
        min_size=_sizes(args.min_size, "--min-size", count=2),
        min_axis=_sizes(args.min_axis, "--min-axis", example="8x8"),
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
    from .distributed import connect

    return connect(cfg.dask.address, timeout=cfg.dask.timeout)


def cmd_capture(args: argparse.Namespace) -> int:
    cfg = capture_config(args)
    if args.dask or cfg.dask.address:
        from .distributed import capture as capture_on
        from .distributed.capture import check_capture

        check_capture(cfg)
        with cluster(cfg, args) as pool:
            capture_on(cfg, pool, quiet=args.quiet)
    elif cfg.train is not None:
        from .capturing.training.trainer import train_and_capture

        train_and_capture(cfg, quiet=args.quiet)
    else:
        from .capturing.stream import capture

        capture(cfg, quiet=args.quiet)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .rendering import render

    cfg = load_config(args.config)
    cfg = cfgmod.override(
        cfg,
        "render",
        out=args.out,
        grid=_sizes(args.grid, "--grid", count=2, minimum=1, example="3x3"),
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


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze

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
            pictures=a.pictures,
            max_channels=a.max_channels,
            cmap=cfg.render.cmap,
            quiet=args.quiet,
            pool=pool,
        )
    if report.problems:
        for line in report.problems[:20]:
            log.warning("%s", line)
        sys.stderr.write(
            f"passage: analyzed into {report.out}; left out {len(report.problems)} layer(s) "
            f"with damaged data files; run `passage verify {run_dir}`\n"
        )
        return 1
    log.info(
        "analysis is in %s (%d file(s) computed, %d up to date, %d picture(s))",
        report.out,
        len(report.computed),
        len(report.reused),
        len(report.pictures),
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .viewer.report import build_report, size_text

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
    from .viewer.tensorboard import export_tensorboard

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


def cmd_layers(args: argparse.Namespace) -> int:
    from .capturing.listing import layer_table
    from .capturing.models import load_model
    from .capturing.probe import layer_infos

    cfg = select_config(load_config(args.config), args)
    model = load_model(args.model or cfg.capture.model, unsafe=args.unsafe or cfg.capture.unsafe)
    sys.stdout.write(layer_table(layer_infos(model), cfg.select) + "\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .viewer import serve

    if not 0 <= args.port <= 65535:
        raise cfgmod.ConfigError(f"--port must be 0 to 65535; received {args.port}")
    runs = args.run or [load_config(args.config).capture.out]
    serve([Path(r) for r in runs], host=args.host, port=args.port, quiet=args.quiet)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .store.verify import verify_run

    return verify_run(args.run)


def cmd_info(args: argparse.Namespace) -> int:
    from .store.verify import run_info

    return run_info(args.run)


COMMANDS = {
    "capture": cmd_capture,
    "render": cmd_render,
    "analyze": cmd_analyze,
    "layers": cmd_layers,
    "serve": cmd_serve,
    "report": cmd_report,
    "export": cmd_export,
    "verify": cmd_verify,
    "info": cmd_info,
}


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the moment (tests and tqdm swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("pipeline")
    root.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("passage: %(message)s"))
        root.addHandler(handler)
        root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.quiet, args.verbose)
        return COMMANDS[args.command](args)
    except PassageError as exc:
        sys.stderr.write(f"passage: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("passage: interrupted; rerun the same command to resume\n")
        return 130
