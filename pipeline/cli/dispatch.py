"""``main``: parse, set up logging, run the chosen command, turn our errors into exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..errors import PassageError
from .parser import build_parser


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
    """Run ``passage ARGV``; the exit status: 0 done, 1 damage skipped, 2 user error."""
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.quiet, args.verbose)
        return args.handler(args)
    except PassageError as exc:
        sys.stderr.write(f"passage: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("passage: interrupted; rerun the same command to resume\n")
        return 130
