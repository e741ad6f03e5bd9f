"""``main``: parse, set up logging, run the chosen command, turn our errors into exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..errors import PassageError
from .parser import build_parser, command_arguments

# library messages name a parameter ("epoch: ..."); where the name is not a flag's own
ALIASES = {"dask address": "dask"}


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
    args = None
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.quiet, args.verbose)
        return args.handler(args)
    except PassageError as exc:
        command = getattr(args, "command", None)
        sys.stderr.write(f"passage: error: {flag_named(str(exc), command)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("passage: interrupted; rerun the same command to resume\n")
        return 130


def flag_named(message: str, command: str | None) -> str:
    """A library message that starts with a parameter's name (``epoch: ...``) starts with the
    flag that sets it on ``passage COMMAND`` (``--epoch: ...``); other messages are unchanged."""
    name, sep, rest = message.partition(": ")
    if not sep or command is None or " " in ALIASES.get(name, name):
        return message
    dest = ALIASES.get(name, name).replace("-", "_")
    for action in command_arguments().get(f"passage {command}", []):
        flags = [o for o in action.option_strings if o.startswith("--")]
        if action.dest == dest and flags:
            return f"{flags[0]}: {rest}"
    return message
