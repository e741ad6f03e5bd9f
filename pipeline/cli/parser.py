"""The ``passage`` argument parser, assembled from each command family's module."""

from __future__ import annotations

import argparse

from .. import config as cfgmod
from . import analyze, capture, compare, inspection, render, viewer, visualize


class _Parser(argparse.ArgumentParser):
    """argparse that raises our ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise cfgmod.ConfigError(f"{self.prog}: {message} (see --help)")


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
    """Every subcommand's parser; each sets ``handler``, the function that runs it."""
    parser = _Parser(
        prog="passage", description="See how patterns pass through a Keras model, layer by layer."
    )
    _add_log_flags(parser, False)
    # The same flags after the subcommand. SUPPRESS: a subcommand's parser sets them only when
    # they are given, so its default never overwrites a -q/-v given before the subcommand.
    after = argparse.ArgumentParser(add_help=False)
    _add_log_flags(after, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    capture.add_parsers(sub, after)
    render.add_parsers(sub, after)
    analyze.add_parsers(sub, after)
    compare.add_parsers(sub, after)
    visualize.add_parsers(sub, after)
    inspection.add_layers(sub, after)
    viewer.add_parsers(sub, after)
    inspection.add_run_checks(sub, after)
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
