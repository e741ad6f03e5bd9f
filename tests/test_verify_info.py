"""`passage verify` and `passage info` on real damage: flipped bytes, truncated, deleted and
orphan files, a malformed manifest tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.store import MANIFEST, RunWriter, open_run

LAYERS = [
    {"index": 1, "name": "conv/1", "class": "Conv2D", "shape": [4, 5, 3], "dir": "001-conv_1"},
    {"index": 2, "name": "dense", "class": "Dense", "shape": [7], "dir": "002-dense"},
]


def make_run(root: Path, fmt: str = "npy", n: int = 10, chunk: int = 4) -> Path:
    """A small batch-mode run written through RunWriter (no TensorFlow needed)."""
    info = {"mode": "batch", "model": "test", "fingerprint": f"verify-{fmt}", "layers": LAYERS}
    info["num_patterns"] = n
    info["patterns"] = f"random:{n}"
    rng = np.random.default_rng(0)
    with RunWriter(root, info, fmt=fmt) as w:
        for first in range(0, n, chunk):
            size = min(chunk, n - first)
            w.write("conv/1", None, first, rng.random((size, 4, 5, 3), dtype=np.float32))
            w.write("dense", None, first, rng.random((size, 7), dtype=np.float32))
    return root


def verify(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["verify", str(run)])
    return code, capsys.readouterr().out.splitlines()


def entry_path(run: Path, layer: str = "conv/1", first: int = 4) -> Path:
    entry = next(e for e in open_run(run).entries if e.layer == layer and e.first == first)
    return run / entry.path


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["npy", "json"])
def test_verify_clean_run_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    run = make_run(tmp_path / "run", fmt)
    code, lines = verify(run, capsys)
    assert code == 0
    assert lines == ["OK: 6 file(s) checked, 0 missing, 0 corrupt, 0 orphan(s)"]


@pytest.mark.parametrize("fmt", ["npy", "json"])
@pytest.mark.parametrize("where", ["header", "body", "last"])
def test_verify_finds_flipped_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, where: str
) -> None:
    run = make_run(tmp_path / "run", fmt)
    path = entry_path(run)
    offset = {"header": 20, "body": path.stat().st_size // 2, "last": path.stat().st_size - 2}
    flip(path, offset[where])
    code, lines = verify(run, capsys)
    assert code == 1
    rel = path.relative_to(run).as_posix()
    assert [line for line in lines if line.startswith("corrupt:")] == [
        next(line for line in lines if line.startswith(f"corrupt: {rel}: checksum"))
    ]
    assert lines[-1] == "PROBLEMS: 6 file(s) checked, 0 missing, 1 corrupt, 0 orphan(s)"


@pytest.mark.parametrize("fmt", ["npy", "json"])
def test_verify_finds_truncated_and_deleted_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    run = make_run(tmp_path / "run", fmt)
    truncated = entry_path(run, "conv/1", 4)
    size = truncated.stat().st_size
    with truncated.open("r+b") as fh:
        fh.truncate(size - 10)
    deleted = entry_path(run, "dense", 8)
    deleted.unlink()
    code, lines = verify(run, capsys)
    assert code == 1
    t_rel, d_rel = truncated.relative_to(run).as_posix(), deleted.relative_to(run).as_posix()
    assert f"missing: {d_rel}" in lines
    assert f"corrupt: {t_rel}: size {size - 10} bytes, manifest says {size}" in lines
    assert lines[-1] == "PROBLEMS: 6 file(s) checked, 1 missing, 1 corrupt, 0 orphan(s)"


def test_verify_lists_orphans_and_temporaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run")
    folder = entry_path(run).parent
    (folder / "0000000099.npy").write_bytes(b"not listed")
    (folder / "0000000012.npy.tmp4242").write_bytes(b"half")
    code, lines = verify(run, capsys)
    assert code == 1
    rel = folder.relative_to(run).as_posix()
    assert f"orphan: {rel}/0000000099.npy (not in manifest)" in lines
    assert f"orphan: {rel}/0000000012.npy.tmp4242 (temporary file of an interrupted write)" in lines
    assert lines[-1] == "PROBLEMS: 6 file(s) checked, 0 missing, 0 corrupt, 2 orphan(s)"


@pytest.mark.parametrize("tail", [b'{"path": "data/batch/00', b"garbage\n", b'{"path": 3}\n'])
def test_verify_reports_malformed_manifest_tail_and_checks_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tail: bytes
) -> None:
    run = make_run(tmp_path / "run")
    with (run / MANIFEST).open("ab") as fh:
        fh.write(tail)
    assert open_run(run).bad_manifest_lines == [7]
    assert len(open_run(run).entries) == 6
    code, lines = verify(run, capsys)
    assert code == 1
    assert "manifest: malformed manifest lines ignored: [7]" in lines
    assert lines[-1] == (
        "PROBLEMS: 6 file(s) checked, 0 missing, 0 corrupt, 0 orphan(s), 1 malformed manifest line(s)"
    )


def test_verify_of_a_folder_that_is_no_run_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is not a Passage run" in err[0]


@pytest.mark.parametrize("fmt", ["npy", "json"])
def test_info_table_lists_layers_shapes_patterns_epochs_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    run = make_run(tmp_path / "run", fmt)
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    entries = open_run(run).entries
    total = sum(e.bytes for e in entries)
    assert total == sum((run / e.path).stat().st_size for e in entries)
    conv = sum(e.bytes for e in entries if e.layer == "conv/1")
    dense = total - conv
    assert "patterns: 10 (random:10)" in out
    assert "epochs:   none (batch mode)" in out
    assert f"files:    6, {total:,} bytes" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["layer", "class", "shape", "patterns", "files", "bytes"] in rows
    assert ["conv/1", "Conv2D", "(4,", "5,", "3)", "10", "3", f"{conv:,}"] in rows
    assert ["dense", "Dense", "(7,)", "10", "3", f"{dense:,}"] in rows


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("shape", [4, 5, 2], "(4, 4, 5, 2) float32"), ("dtype", "float16", "(4, 4, 5, 3) float16")],
)
def test_verify_finds_shape_or_dtype_that_disagree_with_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, says: str
) -> None:
    """A manifest line edited (or written by a buggy writer) while its file is intact."""
    import orjson

    run = make_run(tmp_path / "run")
    lines = (run / MANIFEST).read_bytes().splitlines(keepends=True)
    entry = orjson.loads(lines[0])
    entry[field] = value
    lines[0] = orjson.dumps(entry) + b"\n"
    (run / MANIFEST).write_bytes(b"".join(lines))
    code, out = verify(run, capsys)
    assert code == 1
    corrupt = [line for line in out if line.startswith("corrupt:")]
    assert len(corrupt) == 1 and entry["path"] in corrupt[0] and "manifest says" in corrupt[0]
    assert corrupt[0].endswith(f"(4, 4, 5, 3) float32, manifest says {says}")


def test_verify_and_info_note_an_incomplete_run_without_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run")
    lines = (run / MANIFEST).read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if b'"first":8' not in line or b'"dense"' not in line]
    (run / MANIFEST).write_bytes(b"".join(kept))
    (run / entry_path(run, "conv/1", 0).parent.parent / "002-dense" / "0000000008.npy").unlink()
    code, out = verify(run, capsys)
    assert code == 0
    assert "note: layer 'dense' holds 8 of 10 patterns; rerun the capture to resume" in out
    assert out[-1] == "OK: 5 file(s) checked, 0 missing, 0 corrupt, 0 orphan(s)"
    assert main(["info", str(run)]) == 0
    assert "complete: no, 1 layer(s) incomplete; rerun the capture" in capsys.readouterr().out


def test_verify_flags_manifest_layers_that_run_json_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson

    run = make_run(tmp_path / "run")
    info = orjson.loads((run / "run.json").read_bytes())
    info["layers"] = info["layers"][:1]
    (run / "run.json").write_bytes(orjson.dumps(info))
    code, out = verify(run, capsys)
    assert code == 1
    assert "manifest: manifest lists layer 'dense', which run.json lacks" in out


def test_verify_and_the_reader_report_damage_with_one_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify's lines and the reader's errors come from the same file check: each corrupt
    line's detail is in the error ``Run.load(check=True)`` raises for that file, and a file
    replaced by a folder is missing for both."""
    from pipeline.errors import DamagedDataError

    run = make_run(tmp_path / "run")
    truncated = entry_path(run, "conv/1", 4)
    truncated.write_bytes(truncated.read_bytes()[:-5])
    flip(entry_path(run, "dense", 0), 30)
    folder = entry_path(run, "dense", 8)
    folder.unlink()
    folder.mkdir()
    code, lines = verify(run, capsys)
    assert code == 1
    assert lines[-1] == "PROBLEMS: 6 file(s) checked, 1 missing, 2 corrupt, 0 orphan(s)"
    reader = open_run(run)
    errors: dict[str, DamagedDataError] = {}
    for entry in reader.entries:
        try:
            reader.load(entry, check=True)
        except DamagedDataError as exc:
            errors[exc.path] = exc
    assert {p: e.reason for p, e in errors.items()} == {
        truncated.relative_to(run).as_posix(): "truncated file",
        entry_path(run, "dense", 0).relative_to(run).as_posix(): "checksum mismatch",
        folder.relative_to(run).as_posix(): "missing file",
    }
    for line in lines:
        if line.startswith("corrupt: "):
            rel, detail = line.removeprefix("corrupt: ").split(": ", 1)
            assert f": {detail}; see `passage verify" in str(errors[rel])
    assert f"missing: {folder.relative_to(run).as_posix()}" in lines


def test_verify_and_info_skip_a_manifest_line_of_wrong_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line whose fields hold other JSON types (``"max": {"a": 1}``, a string count) is
    skipped and reported like an unreadable line, not a TypeError."""
    import orjson

    run = make_run(tmp_path / "run")
    lines = (run / MANIFEST).read_bytes().splitlines(keepends=True)
    for i, (field, value) in enumerate([("max", {"a": 1}), ("count", "4")]):
        entry = orjson.loads(lines[i])
        entry[field] = value
        lines[i] = orjson.dumps(entry) + b"\n"
    (run / MANIFEST).write_bytes(b"".join(lines))
    code, out = verify(run, capsys)
    assert code == 1
    assert "manifest: malformed manifest lines ignored: [1, 2]" in out
    assert out[-1] == (
        "PROBLEMS: 4 file(s) checked, 0 missing, 0 corrupt, 2 orphan(s), 2 malformed manifest "
        "line(s)"
    )
    assert main(["info", str(run)]) == 0
    assert "manifest: malformed line(s) [1, 2] ignored" in capsys.readouterr().out
