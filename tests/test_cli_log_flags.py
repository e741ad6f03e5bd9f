"""``-q``/``--quiet`` and ``-v``/``--verbose`` before and after every subcommand, through real
``main([...])`` calls; and the one "AxB" parser behind ``--grid``, ``--min-size``, ``--min-axis``."""

from __future__ import annotations

import logging

import pytest

from pipeline.cli import main
from pipeline.config import parse_sizes
from pipeline.errors import ConfigError
from pipeline.store import crc

COMMANDS = ("capture", "render", "verify", "info")
# Commands that compute CRC-32s, so that a fresh CRC backend choice logs its debug line.
CHECKSUMMING = ("capture", "render", "verify")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("log-flags") / "run"
    assert main(["-q", "capture", "--out", str(out), "--no-architecture"]) == 0
    return out


def argv(command: str, run_dir, tmp_path, flag: str, position: str) -> list[str]:
    """``command``'s arguments with ``flag`` before (``passage -q info RUN``) or after
    (``passage info RUN -q``) the subcommand."""
    if command == "capture":
        rest = ["--out", str(tmp_path / "new"), "--no-architecture", "--patterns", "random:2"]
    elif command == "render":
        rest = [str(run_dir), "--out", str(tmp_path / "pictures"), "--workers", "1"]
    else:
        rest = [str(run_dir)]
    return [flag, command, *rest] if position == "before" else [command, *rest, flag]


def pipeline_level() -> int:
    return logging.getLogger("pipeline").level


@pytest.mark.parametrize("command", ["capture", "render"])
def test_without_flags_capture_and_render_log_progress(command, run_dir, tmp_path, capsys):
    """The baseline the -q tests silence: info lines and a progress bar on stderr."""
    args = argv(command, run_dir, tmp_path, "-q", "after")[:-1]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert pipeline_level() == logging.INFO
    assert "passage: " in err
    assert "pattern/s" in err or "it/s" in err or "%|" in err


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("flag", ["-q", "--quiet"])
@pytest.mark.parametrize("command", COMMANDS)
def test_quiet_silences_logs_and_progress(command, flag, position, run_dir, tmp_path, capsys):
    assert main(argv(command, run_dir, tmp_path, flag, position)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert pipeline_level() == logging.WARNING
    if command == "verify":
        assert out.splitlines()[-1].startswith("OK:")  # the command's own result stays
    if command == "info":
        assert "my_dense" in out


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("flag", ["-v", "--verbose"])
@pytest.mark.parametrize("command", COMMANDS)
def test_verbose_turns_on_debug_logging(command, flag, position, run_dir, tmp_path, capsys):
    crc._implementation.cache_clear()  # the next CRC-32 chooses its backend again and logs it (debug)
    assert main(argv(command, run_dir, tmp_path, flag, position)) == 0
    err = capsys.readouterr().err
    assert pipeline_level() == logging.DEBUG
    if command in CHECKSUMMING:
        assert "passage: crc32: using " in err


def test_quiet_and_verbose_on_both_sides(run_dir, capsys):
    assert main(["-q", "info", str(run_dir), "-v"]) == 0
    assert pipeline_level() == logging.DEBUG  # -v wins over -q, wherever each stands
    assert main(["-v", "info", str(run_dir)]) == 0
    assert pipeline_level() == logging.DEBUG
    assert main(["info", str(run_dir)]) == 0
    assert pipeline_level() == logging.INFO  # a subcommand's default never sets them


def test_one_size_parser_for_every_axb_flag():
    assert parse_sizes("2x3", "--grid", count=2, minimum=1) == (2, 3)
    assert parse_sizes(" 15X15 ", "--min-size", count=2) == (15, 15)
    assert parse_sizes("8", "--min-axis") == (8,)
    assert parse_sizes("8x8x3", "--min-axis") == (8, 8, 3)
    assert parse_sizes("0x0", "--min-size", count=2) == (0, 0)
    cases = [
        ("3by3", "--grid: expected AxB such as 3x3, received '3by3'"),
        ("3", "--grid: expected 2 sizes, AxB such as 3x3, received '3'"),
        ("0x3", "--grid: expected sizes >= 1, received '0x3'"),
        ("", "--grid: expected AxB such as 3x3, received ''"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError) as info:
            parse_sizes(text, "--grid", count=2, minimum=1, example="3x3")
        assert str(info.value) == message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capture", "--min-size", "15"], "--min-size: expected 2 sizes, AxB such as 15x15"),
        (["capture", "--min-size=-1x5"], "--min-size: expected sizes >= 0, received '-1x5'"),
        (["capture", "--min-axis", "8xq"], "--min-axis: expected N or AxB such as 8 or 8x8"),
        (["render", ".", "--grid", "0x2"], "--grid: expected sizes >= 1, received '0x2'"),
    ],
)
def test_size_flags_are_one_line_errors(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"passage: error: {message}"), err
