"""Damaged runs never end in a traceback.

One real run is captured once (the seeded model, three patterns, two files per layer). Each
example copies it, damages one field or a few bytes of ``manifest.jsonl`` or ``run.json``, and
runs ``passage info``, ``verify`` and ``render`` in-process: each ends with status 0, 1 or 2,
never a traceback, and a status 2 is one line on stderr. A bad manifest line is skipped and
reported (verify and render exit 1); a bad run.json is one ``StoreError`` line (exit 2).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.store import MANIFEST, RUN_JSON, open_run

# Values of other JSON types and ranges than the fields hold: objects, lists, strings (some
# that look like numbers), null, bools, ints at and past the int64 edges, floats.
HOSTILE: list[Any] = [
    {"a": 1},
    {},
    [],
    [1, "x"],
    [-1],
    "",
    "x",
    "NaN",
    "Infinity",
    "-inf",
    "1e400",
    "line\nbreak",
    "nul\x00byte",
    "data/nul\x00byte.npy",
    "data/../run.json",
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    0.5,
    -1e308,
]
UNREAD = ("config", "versions")  # run.json entries kept for people, read by no code
# Manifest fields ``verify`` checks against the file (where it is, which layer, its size, its
# checksum, the shape and dtype in its header): any change to one must make it exit non-zero.
VERIFIED = ("path", "layer", "bytes", "checksum", "shape", "dtype")
DELETE = object()  # remove the key (or the list item) instead of replacing it


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, seed_model: Any) -> Path:
    from pipeline.capturing.stream import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig

    out = tmp_path_factory.mktemp("pristine") / "run"
    capture = CaptureConfig(out=str(out), patterns="random:3", batch_size=2, architecture=False)
    run = capture_model(seed_model, Config(capture=capture, select=SelectConfig()), quiet=True)
    assert len(run.entries) == 6 and run.num_patterns == 3
    return out


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-q", *argv])
    return code, out.getvalue(), err.getvalue()


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a parsed JSON value (dict keys and list indices), depth first."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, (dict, list)):
            found.extend(paths_in(child, (*prefix, key)))
    return found


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@st.composite
def field_damage(draw: st.DrawFn, text: bytes, one_line: bool) -> tuple[bytes, str | None]:
    """``text`` (run.json, or one manifest line) with one field replaced or deleted; and, when
    that changed a manifest field ``verify`` checks, its name."""
    lines = text.splitlines(keepends=True) if one_line else [text]
    i = draw(st.integers(0, len(lines) - 1))
    doc = orjson.loads(lines[i])
    every = paths_in(doc)
    # Most of run.json's fields by count are copies of the config and the versions, read by
    # no code: a third of the time a top-level field, a third a field outside those copies.
    used = [p for p in every if p[0] not in UNREAD] or every
    top = [p for p in used if len(p) == 1]
    path = draw(st.sampled_from(top) | st.sampled_from(used) | st.sampled_from(every))
    before = orjson.dumps(doc)
    replaced(doc, path, draw(st.sampled_from([*HOSTILE, DELETE])))
    lines[i] = orjson.dumps(doc) + (b"\n" if one_line else b"")
    checked = one_line and path[0] in VERIFIED and orjson.dumps(doc) != before
    return b"".join(lines), str(path[0]) if checked else None


@st.composite
def byte_damage(draw: st.DrawFn, text: bytes) -> bytes:
    """``text`` with a bit flipped, cut short, or a few bytes inserted."""
    at = draw(st.integers(0, len(text) - 1))
    kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return text[:at] + bytes([text[at] ^ (1 << bit)]) + text[at + 1 :]
    if kind == "truncate":
        return text[:at]
    return text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]


def damaged(pristine: Path) -> st.SearchStrategy[tuple[str, bytes, str | None]]:
    """(file name, its damaged text, the verified manifest field changed or None)."""
    manifest = (pristine / MANIFEST).read_bytes()
    run_json = (pristine / RUN_JSON).read_bytes()
    return st.one_of(
        field_damage(manifest, one_line=True).map(lambda d: (MANIFEST, *d)),
        field_damage(run_json, one_line=False).map(lambda d: (RUN_JSON, d[0], None)),
        byte_damage(manifest).map(lambda b: (MANIFEST, b, None)),
        byte_damage(run_json).map(lambda b: (RUN_JSON, b, None)),
    )


def check_commands(run: Path, pictures: Path) -> list[int]:
    """info, verify and render of ``run``: the contract of each status; the statuses."""
    codes = []
    for argv in (
        ("info", str(run)),
        ("verify", str(run)),
        # Patterns by name, one from each file of a layer: a run.json claiming 2**63 patterns
        # would otherwise ask for that many pages (as an interrupted capture asks for its
        # missing ones). One row of three cells: a page with a marked cell is drawn by
        # matplotlib, whose axes are the slow part.
        (
            "render",
            str(run),
            "--out",
            str(pictures),
            "--workers",
            "1",
            "--patterns",
            "0,2",
            "--grid",
            "1x3",
        ),
    ):
        code, out, err = cli(*argv)
        said = f"{argv[0]} -> {code}\nstdout:\n{out}\nstderr:\n{err}"
        assert code in (0, 1, 2), said
        assert "Traceback" not in out + err, said
        if code == 2:
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("passage: error: "), said
        codes.append(code)
    return codes


def test_the_pristine_run_is_clean(pristine: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    assert check_commands(run, tmp_path / "pictures") == [0, 0, 0]


def test_damaged_runs_end_in_a_status_never_a_traceback(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    seen: dict[str, set[int]] = {MANIFEST: set(), RUN_JSON: set()}

    @settings(
        max_examples=90,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(damage=damaged(pristine))
    def one(damage: tuple[str, bytes, str | None]) -> None:
        name, text, field = damage
        where = tmp_path_factory.mktemp("damaged")
        run = where / "run"
        shutil.copytree(pristine, run)
        (run / name).write_bytes(text)
        try:
            codes = check_commands(run, where / "pictures")
            seen[name].update(codes)
            if field is not None:  # a field verify checks: it must not call the run sound
                checked_fields.add(field)
                assert codes[1] != 0, f"verify exited 0 with the manifest's {field!r} changed"
        finally:
            shutil.rmtree(where)

    checked_fields: set[str] = set()
    one()
    # Both files were damaged, and the damage was seen: not every example was harmless.
    assert seen[MANIFEST] - {0} and seen[RUN_JSON] - {0}
    assert checked_fields, "no example changed a field verify checks"


@pytest.mark.parametrize("field", VERIFIED)
def test_verify_fails_whatever_replaces_a_field_it_checks(
    pristine: Path, tmp_path: Path, field: str
) -> None:
    """Every hostile value (and the field's deletion) in the first and the last manifest line:
    verify exits 1 and says PROBLEMS, never 0; an unchanged field is no damage."""
    lines = (pristine / MANIFEST).read_bytes().splitlines(keepends=True)
    tried = 0
    for i in (0, len(lines) - 1):
        for value in [*HOSTILE, DELETE]:
            doc = orjson.loads(lines[i])
            if value is not DELETE and orjson.dumps(value) == orjson.dumps(doc[field]):
                continue
            replaced(doc, (field,), value)
            run = tmp_path / f"run-{tried}"
            shutil.copytree(pristine, run)
            damaged_lines = list(lines)
            damaged_lines[i] = orjson.dumps(doc) + b"\n"
            (run / MANIFEST).write_bytes(b"".join(damaged_lines))
            code, out, err = cli("verify", str(run))
            said = f"{field} = {value!r} on line {i + 1}: verify -> {code}\n{out}{err}"
            assert code == 1 and out.splitlines()[-1].startswith("PROBLEMS"), said
            shutil.rmtree(run)
            tried += 1
    assert tried >= 2 * len(HOSTILE)


def test_a_manifest_max_that_is_an_object_is_a_skipped_line(pristine: Path, tmp_path: Path) -> None:
    """The reported case: ``"max": {"a": 1}`` ended info, verify and render in a TypeError."""
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    lines = (run / MANIFEST).read_bytes().splitlines(keepends=True)
    entry = orjson.loads(lines[1])
    entry["max"] = {"a": 1}
    lines[1] = orjson.dumps(entry) + b"\n"
    (run / MANIFEST).write_bytes(b"".join(lines))

    reopened = open_run(run)
    assert reopened.bad_manifest_lines == [2] and len(reopened.entries) == 5
    code, out, _ = cli("info", str(run))
    assert code == 0 and "manifest: malformed line(s) [2] ignored" in out
    code, out, _ = cli("verify", str(run))
    assert code == 1 and "manifest: malformed manifest lines ignored: [2]" in out
    code, _, err = cli("render", str(run), "--out", str(tmp_path / "pictures"), "--workers", "1")
    assert code == 1
    assert "field 'max': expected a number or null, received {'a': 1}" in err
    assert err.splitlines()[-1].startswith("passage: rendered 3 page(s)")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("num_patterns", "3", "field 'num_patterns': expected a non-negative int, received '3'"),
        ("layers", {"a": 1}, "field 'layers': expected a list of layer records"),
        ("time", [], "field 'time': expected an object or null, received []"),
        ("format", "xml", "field 'format': expected one of ('npy', 'json'), received 'xml'"),
        ("sources", {"names": ["a.png"]}, "field 'sources.names': expected 3 name(s)"),
    ],
)
def test_a_bad_run_json_field_is_one_line_naming_it(
    pristine: Path, tmp_path: Path, field: str, value: Any, says: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    info = orjson.loads((run / RUN_JSON).read_bytes())
    info[field] = value
    (run / RUN_JSON).write_bytes(orjson.dumps(info))
    for command in ("info", "verify", "render"):
        code, _, err = cli(command, str(run))
        assert code == 2
        assert err.count("\n") == 1 and says in err and "is damaged" in err
