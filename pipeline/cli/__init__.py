"""``passage`` command line: capture, render, analyze, compare, visualize, layers, serve,
report, export, verify, info (every flag: docs/cli.md).

Exit status 0 on success; a user error prints one line on stderr (no traceback) and exits 2;
a render that had to skip damaged data exits 1. Flags override the config file. ``-q`` and
``-v`` are accepted before and after the subcommand.

One module per command family (``capture``, ``render``, ``analyze``, ``compare``,
``visualize``, ``viewer``: serve, report, export; ``inspection``: layers, verify, info), each
adding its parsers and the functions that run them; ``parser`` assembles them,
``dispatch.main`` runs one.
"""

from .capture import capture_config
from .common import load_config, select_config
from .dispatch import main, setup_logging
from .parser import build_parser, command_arguments

__all__ = [
    "build_parser",
    "capture_config",
    "command_arguments",
    "load_config",
    "main",
    "select_config",
    "setup_logging",
]
