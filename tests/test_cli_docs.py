"""docs/cli.md against the real parser: every flag documented, every documented flag real.

The doc's format: a ``### passage`` heading (options of every command) and one
``### passage <command>`` heading per subcommand, each followed by a markdown table whose first
column holds the flag spellings in backticks (`` `-q`, `--quiet` ``) or, for a positional
argument, its upper-case name (`` `RUN` ``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cli import command_arguments

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
HEADING = re.compile(r"^###\s+(passage(?:\s+[a-z-]+)?)\s*$")
CELL_SPLIT = re.compile(r"(?<!\\)\|")  # `npy \| json` stays inside one cell
FLAG = re.compile(r"`(-{1,2}[A-Za-z0-9][A-Za-z0-9-]*)`")
POSITIONAL = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def doc_tables(text: str) -> dict[str, list[list[str]]]:
    """``### passage …`` heading -> the cells of its table's body rows."""
    tables: dict[str, list[list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            match = HEADING.match(line)
            current = " ".join(match.group(1).split()) if match else None
            if current is not None:
                assert current not in tables, f"docs/cli.md: heading {line!r} appears twice"
                tables[current] = []
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip().strip("|"))]
        if cells[0] in ("flag",) or set(cells[0]) <= set("-: "):
            continue  # the header row and the separator row
        tables[current].append(cells)
    return tables


def documented(rows: list[list[str]], command: str) -> tuple[set[str], set[str], dict[str, str]]:
    """Flags, positional names, and each flag's whole row (for the choices check)."""
    flags: set[str] = set()
    positionals: set[str] = set()
    row_of: dict[str, str] = {}
    for cells in rows:
        names = FLAG.findall(cells[0])
        args = POSITIONAL.findall(cells[0])
        assert names or args, (
            f"docs/cli.md, {command}: a row whose first column holds no `-flag` and no "
            f"`POSITIONAL`: {cells[0]!r}"
        )
        for name in names:
            assert name not in flags, f"docs/cli.md, {command}: {name} documented twice"
            flags.add(name)
            row_of[name] = " | ".join(cells)
        positionals.update(args)
    return flags, positionals, row_of


@pytest.fixture(scope="module")
def tables() -> dict[str, list[list[str]]]:
    return doc_tables(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_one_table_per_command(tables):
    commands = command_arguments()
    assert sorted(tables) == sorted(commands), (
        "docs/cli.md: expected one '### <command>' heading with a table per command"
    )
    for name, rows in tables.items():
        assert rows, f"docs/cli.md: the table under '### {name}' is missing or empty"


def test_every_flag_is_documented_and_every_documented_flag_exists(tables):
    commands = command_arguments()
    global_flags = {s for a in commands["passage"] for s in a.option_strings}
    problems = []
    for command, actions in commands.items():
        flags, positionals, _ = documented(tables.get(command, []), command)
        real = {s for a in actions for s in a.option_strings}
        if command != "passage":
            missing_global = global_flags - real
            if missing_global:
                problems.append(f"{command} does not accept {sorted(missing_global)} after it")
            real -= global_flags  # documented once, under '### passage'
        real_positionals = {a.dest.upper() for a in actions if not a.option_strings}
        for flag in sorted(real - flags):
            problems.append(f"{command} {flag}: in the parser, not in docs/cli.md")
        for flag in sorted(flags - real):
            problems.append(f"{command} {flag}: in docs/cli.md, not in the parser")
        for name in sorted(real_positionals ^ positionals):
            where = "the parser" if name in real_positionals else "docs/cli.md"
            problems.append(f"{command} positional {name}: only in {where}")
    assert not problems, "\n".join(problems)


def test_documented_rows_name_every_choice(tables):
    problems = []
    for command, actions in command_arguments().items():
        _, _, row_of = documented(tables.get(command, []), command)
        for action in actions:
            row = next((row_of[s] for s in action.option_strings if s in row_of), None)
            if row is None or not action.choices:
                continue
            for choice in action.choices:
                if f"`{choice}`" not in row:
                    problems.append(f"{command} {action.option_strings[-1]}: choice {choice!r}")
    assert not problems, "docs/cli.md: choices the rows do not name:\n" + "\n".join(problems)


def test_the_parser_of_the_doc_finds_flags_rows_and_escaped_pipes():
    text = (
        "### passage capture\n\n| flag | value |\n|---|---|\n"
        "| `--format` | `npy` \\| `json` |\n| `-q`, `--quiet` | |\n"
        "## Other\n| `--not-a-flag-of-capture` | |\n"
    )
    rows = doc_tables(text)["passage capture"]
    flags, positionals, row_of = documented(rows, "passage capture")
    assert flags == {"--format", "-q", "--quiet"} and positionals == set()
    assert "`npy` \\| `json`" in row_of["--format"]
