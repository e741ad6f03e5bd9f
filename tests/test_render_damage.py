"""Render with damaged data: every other page is drawn, damaged cells are marked, one summary
line and exit status 1; `--strict` stops at the first problem with exit status 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.errors import DamagedDataError
from pipeline.rendering.cells import ChunkCache, GridOptions, layer_cell
from pipeline.rendering.grids import MARK_FACE
from pipeline.store import MANIFEST, RunWriter, open_run

LAYERS = [
    {"index": i, "name": name, "class": "Dense", "shape": [6, 5], "dir": f"00{i}-{name}"}
    for i, name in enumerate(["a", "b", "c"], start=1)
]
N = 6


def make_run(root: Path, fmt: str) -> Path:
    info = {"mode": "batch", "model": "test", "fingerprint": "render", "layers": LAYERS}
    info["num_patterns"] = N
    rng = np.random.default_rng(1)
    with RunWriter(root, info, fmt=fmt) as w:
        for first in range(0, N, 2):
            for rec in LAYERS:
                w.write(rec["name"], None, first, rng.random((2, 6, 5), dtype=np.float32))
    return root


def path_of(run: Path, layer: str, first: int) -> Path:
    entry = next(e for e in open_run(run).entries if e.layer == layer and e.first == first)
    return run / entry.path


def damage(run: Path, fmt: str) -> dict[str, str]:
    """Delete one file, truncate one, flip a header byte of one; return path -> reason."""
    missing = path_of(run, "a", 2)
    missing.unlink()
    truncated = path_of(run, "b", 0)
    truncated.write_bytes(truncated.read_bytes()[:-7])
    flipped = path_of(run, "c", 4)
    data = bytearray(flipped.read_bytes())
    # NPY: inside the header's dict text; JSON: inside the first number of the data.
    at = 12 if fmt == "npy" else data.index(b'"data":[') + 10
    data[at] ^= 0x04
    flipped.write_bytes(bytes(data))
    rel = {p: p.relative_to(run).as_posix() for p in (missing, truncated, flipped)}
    return {
        rel[missing]: "missing file",
        rel[truncated]: "truncated file",
        rel[flipped]: "checksum mismatch",
    }


def mark_pixels(png: Path) -> int:
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    want = np.array([int(MARK_FACE[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(rgb - want).sum(axis=-1) <= 6))


@pytest.mark.parametrize("fmt", ["npy", "json"])
def test_render_draws_every_page_marks_damage_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    run = make_run(tmp_path / "run", fmt)
    expected = damage(run, fmt)
    out = tmp_path / "pictures"
    code = main(["render", str(run), "--out", str(out), "--grid", "1x2", "--workers", "1"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    # 6 patterns x 2 pages, all drawn.
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pages == [f"pattern-{p}/{k}.png" for p in range(N) for k in (0, 1)]
    summary = [line for line in err if line.startswith("passage: rendered") and "skipped" in line]
    assert summary == [err[-1]]
    assert "rendered 12 page(s)" in err[-1]
    assert "skipped 6 damaged cell(s)" in err[-1] and "(3 damaged data file(s))" in err[-1]
    for rel in expected:
        assert sum(rel in line for line in err) == 1, (rel, err)  # one warning per file
    # Damaged cells are marked on their page; clean pages carry no mark.
    marked = {(p, k) for p in range(N) for k in (0, 1) if mark_pixels(out / f"pattern-{p}/{k}.png")}
    # a (page 0) damaged for patterns 2-3, b (page 0) for 0-1, c (page 1) for 4-5.
    assert marked == {(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1)}


@pytest.mark.parametrize("fmt", ["npy", "json"])
def test_each_damaged_cell_gets_its_own_reason(tmp_path: Path, fmt: str) -> None:
    run = make_run(tmp_path / "run", fmt)
    damage(run, fmt)
    cache = ChunkCache(open_run(run))
    reasons = {
        (layer, p): layer_cell(cache, layer, p, None, GridOptions()).problem
        for layer in "abc"
        for p in range(N)
    }
    assert {k: v for k, v in reasons.items() if v} == {
        ("a", 2): "missing file",
        ("a", 3): "missing file",
        ("b", 0): "truncated file",
        ("b", 1): "truncated file",
        ("c", 4): "checksum mismatch",
        ("c", 5): "checksum mismatch",
    }


def test_body_bit_flip_is_caught_by_the_checksum_not_drawn(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "npy")
    target = path_of(run, "b", 2)
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x10  # a float's exponent bits: still a readable array, wrong values
    target.write_bytes(bytes(data))
    entry = next(e for e in open_run(run).entries if e.layer == "b" and e.first == 2)
    assert open_run(run).load(entry).shape == (2, 6, 5)  # unchecked read does not notice
    with pytest.raises(DamagedDataError) as info:
        open_run(run).load(entry, check=True)
    assert info.value.reason == "checksum mismatch"
    assert "rerun the same capture to write it again" in str(info.value)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_strict_stops_at_the_first_problem_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    run = make_run(tmp_path / "run", "npy")
    damage(run, "npy")
    out = tmp_path / "pictures"
    code = main(["-q", "render", str(run), "--out", str(out), "--strict", "--workers", workers])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("passage: error: pattern ")
    assert "--strict stops at the first problem" in err[0]


def test_malformed_manifest_tail_is_reported_and_the_rest_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run", "npy")
    with (run / MANIFEST).open("ab") as fh:
        fh.write(b'{"path": "data/batch/001-a/00000')
    code = main(["render", str(run), "--out", str(tmp_path / "p"), "--workers", "1"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert any("manifest lines [10] are malformed" in line for line in err)
    assert "skipped 1 damaged cell(s) or item(s)" in err[-1]
    assert len(list((tmp_path / "p").rglob("*.png"))) == N
