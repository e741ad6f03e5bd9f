"""Hostile and broken inputs: each gives one clear line and exit status 2, or a documented
behaviour (see docs/reliability.md)."""

from __future__ import annotations

import logging
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import StoreError
from pipeline.rendering.grids import Cell, GridOptions, PagePainter
from pipeline.store import MANIFEST, RunWriter, open_run
from pipeline.store.verify import check_run

BASE = ["capture", "--batch-size", "4", "--select", "all", "--no-architecture"]


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("passage: error: ")
    return err[0]


def capture(args: list[str], out: Path) -> int:
    return main(["-q", *BASE, *args, "--out", str(out)])


# -- NaN / Inf ---------------------------------------------------------------------------------
def test_nonfinite_values_are_captured_counted_and_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(0).random((6, 50, 50), dtype=np.float32)
    x[1, 3, 4] = np.nan
    x[2, 0, :] = np.inf
    x[3, 7, :] = 3e38  # finite pattern, overflows to inf inside the model
    np.save(tmp_path / "p.npy", x)
    run_dir = tmp_path / "run"
    assert capture(["--patterns", str(tmp_path / "p.npy")], run_dir) == 0
    run = open_run(run_dir)
    total = 0
    for e in run.entries:
        arr = run.load(e)
        assert e.nonfinite == int(np.count_nonzero(~np.isfinite(arr)))
        finite = arr[np.isfinite(arr)]
        if finite.size:
            assert (e.min, e.max) == (float(finite.min()), float(finite.max()))
        total += e.nonfinite
    assert total > 0
    assert np.isnan(run.get("dense", 1)).any() and np.isfinite(run.get("dense", 0)).all()
    assert not np.isfinite(run.get("dense", 3)).all()  # overflow captured as is
    assert check_run(run).ok

    # Render: non-finite values are masked (drawn as the blank 'bad' color), not an error.
    out = tmp_path / "pictures"
    assert main(["-q", "render", str(run_dir), "--out", str(out), "--workers", "1"]) == 0
    assert len(list(out.rglob("*.png"))) == 6
    painter = PagePainter(GridOptions(rows=1, cols=1))
    image = np.array(run.get("dense", 1))
    painter.draw([Cell("dense", image=image)], tmp_path / "one.png")
    drawn = painter.images[0].get_array()
    assert np.array_equal(np.ma.getmaskarray(drawn), ~np.isfinite(image))
    painter.fig.clear()


# -- empty and mis-shaped patterns ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "words"),
    [((0, 50, 50), "zero patterns"), ((4, 0, 50), "expects"), ((4, 50), "expects")],
)
def test_empty_or_misshaped_patterns_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: tuple[int, ...], words: str
) -> None:
    np.save(tmp_path / "p.npy", np.zeros(shape, np.float32))
    assert capture(["--patterns", str(tmp_path / "p.npy")], tmp_path / "run") == 2
    assert words in one_error(capsys)


def test_random_zero_patterns_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert capture(["--patterns", "random:0"], tmp_path / "run") == 2
    assert "zero patterns" in one_error(capsys)


# -- dtypes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool", "float64", "float16"])
def test_non_float32_patterns_are_cast_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: str
) -> None:
    rng = np.random.default_rng(1)
    values = (
        rng.integers(0, 2, (5, 50, 50))
        if dtype in ("int64", "uint8", "bool")
        else rng.random((5, 50, 50))
    )
    np.save(tmp_path / "p.npy", values.astype(dtype))
    np.save(tmp_path / "f32.npy", values.astype(dtype).astype(np.float32))
    assert main([*BASE, "--patterns", str(tmp_path / "p.npy"), "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert f"have dtype {dtype}; they are cast to the input dtype" in err
    assert capture(["--patterns", str(tmp_path / "f32.npy")], tmp_path / "b") == 0
    a, b = open_run(tmp_path / "a"), open_run(tmp_path / "b")
    for layer in a.layers:
        for (_, xa), (_, xb) in zip(a.iter_chunks(layer), b.iter_chunks(layer), strict=True):
            np.testing.assert_array_equal(xa, xb)


# -- object / pickled arrays --------------------------------------------------------------------
def test_object_npy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = np.empty((2, 50, 50), dtype=object)
    obj[...] = 0.5
    np.save(tmp_path / "p.npy", obj, allow_pickle=True)
    assert capture(["--patterns", str(tmp_path / "p.npy")], tmp_path / "run") == 2
    line = one_error(capsys)
    assert f"pattern file {tmp_path / 'p.npy'}: " in line
    assert line.endswith("object/pickled arrays are refused, save a numeric array")
    assert not (tmp_path / "run").exists()


def test_pickle_disguised_as_npy_is_refused_and_never_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self) -> tuple[object, ...]:
            return (Path.touch, (marker,))

    (tmp_path / "p.npy").write_bytes(pickle.dumps(Boom()))
    assert capture(["--patterns", str(tmp_path / "p.npy")], tmp_path / "run") == 2
    assert "pickled" in one_error(capsys)
    assert not marker.exists()


class Unpickled:
    """An object that leaves a marker file when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("key", [":x", ""])
def test_object_array_in_npz_is_refused_and_never_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    marker = tmp_path / "unpickled"
    obj = np.empty((2, 50, 50), dtype=object)
    obj[...] = Unpickled(marker)
    np.savez(tmp_path / "p.npz", x=obj)
    assert capture(["--patterns", f"{tmp_path / 'p.npz'}{key}"], tmp_path / "run") == 2
    assert not marker.exists()
    line = one_error(capsys)
    assert f"pattern file {tmp_path / 'p.npz'} cannot be read" in line
    assert "allow_pickle=False" in line  # refused as an object array, not for another reason
    assert not (tmp_path / "run").exists()


# -- unsafe model files ------------------------------------------------------------------------
def test_keras_file_with_lambda_needs_unsafe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    inputs = keras.Input((50, 50))
    x = keras.layers.Dense(20, name="d")(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, x).save(path)
    args = ["--model", str(path), "--patterns", "random:3"]
    assert capture(args, tmp_path / "run") == 2
    line = one_error(capsys)
    assert "needs unsafe deserialization" in line and "--unsafe" in line
    assert not (tmp_path / "run").exists()
    assert capture([*args, "--unsafe"], tmp_path / "run") == 0
    run = open_run(tmp_path / "run")
    np.testing.assert_allclose(run.get("double", 0), 2 * run.get("d", 0), rtol=1e-6)


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (
            '[capture]\nbatch_size = "8"\n',
            "[capture] batch_size: expected an integer, received '8'",
        ),
        ("[capture]\noverwrite = 1\n", "[capture] overwrite: expected true or false, received 1"),
        ("[capture]\ncolour = 1\n", "unknown config key [capture] 'colour'; expected one of:"),
        ("[captur]\nout = 'x'\n", "unknown config section [captur]; expected one of:"),
        ("[select]\nmin_size = [15]\n", "[select] min_size: expected a list of 2 items [H, W]"),
        ("[capture]\nbatch_size = -1\n", "[capture] batch_size: expected >= 1, or 0 to choose"),
        ("[capture]\nbatch_mb = 0\n", "[capture] batch_mb: expected >= 1 (MiB), received 0"),
        ("[capture\n", "is not valid TOML"),
    ],
)
def test_bad_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, words: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["capture", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert words in one_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--batch-size", "x"], "argument --batch-size: invalid int value: 'x' (see --help)"),
        (["--batch-size", "-3"], "batch_size: expected >= 1, or 0 to choose it by batch_mb, "),
        (["--format", "csv"], "--format: invalid choice: 'csv' (choose from 'npy', 'json')"),
        (["--bogus"], "unrecognized arguments: --bogus (see --help)"),
    ],
)
def test_bad_flags_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    assert main(["capture", *flags, "--out", str(tmp_path / "run")]) == 2
    line = one_error(capsys)
    assert words in line  # names the flag, what it got and what it takes
    assert flags[-1] in line
    assert not (tmp_path / "run").exists()


# -- manifest with a damaged last line --------------------------------------------------------
LAYERS = [{"index": 1, "name": "a", "class": "Dense", "shape": [3], "dir": "001-a"}]
INFO = {"mode": "batch", "fingerprint": "m", "num_patterns": 6, "layers": LAYERS}


@pytest.mark.parametrize("tail", [b'{"path": "data/ba', b"\x00\xff\n", b'{"path": "../x"}\n'])
def test_malformed_manifest_tail_is_ignored_reported_and_dropped_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tail: bytes
) -> None:
    data = np.arange(18, dtype=np.float32).reshape(6, 3)
    with RunWriter(tmp_path, INFO) as w:
        w.write("a", None, 0, data[:2])
        w.write("a", None, 2, data[2:4])
    with (tmp_path / MANIFEST).open("ab") as fh:
        fh.write(tail)
    with caplog.at_level(logging.WARNING):
        run = open_run(tmp_path)
    assert run.bad_manifest_lines == [3]
    assert "ignoring malformed line 3" in caplog.text
    np.testing.assert_array_equal(run.get("a", 3), data[3])
    with RunWriter(tmp_path, INFO) as w:  # resume: the bad line goes, new lines follow
        assert sorted(w.done) == [(None, "a", 0), (None, "a", 2)]
        w.write("a", None, 4, data[4:])
    run = open_run(tmp_path)
    assert run.bad_manifest_lines == []
    np.testing.assert_array_equal(np.concatenate([a for _, a in run.iter_chunks("a")]), data)
    assert check_run(run).ok


# -- layer names that try to leave the run -------------------------------------------------------
# Keras refuses '/' in layer names and TensorFlow refuses '\\'; dots are what is left to try.
# Names with '/' and '../' are tested on the store directly (test_store_roundtrip.py).
FACTORY = textwrap.dedent(
    """
    import keras

    def build():
        inputs = keras.Input((50, 50), name="in")
        x = keras.layers.Dense(4, name="..")(inputs)
        x = keras.layers.Dense(4, name="...")(x)
        x = keras.layers.Dense(4, name=".hidden")(x)
        return keras.Model(inputs, x)
    """
)


def test_layer_names_made_of_dots_stay_inside_the_run(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(FACTORY)
    box = tmp_path / "box"
    box.mkdir()
    run_dir = box / "run"
    assert (
        capture(["--model", f"{tmp_path / 'm.py'}:build", "--patterns", "random:3"], run_dir) == 0
    )
    assert sorted(p.name for p in box.iterdir()) == ["run"]
    run = open_run(run_dir)
    assert run.layers == ["..", "...", ".hidden"]
    for e in run.entries:
        target = (run_dir / e.path).resolve()
        assert target.is_relative_to((run_dir / "data").resolve())
        assert not any(part.startswith(".") for part in Path(e.path).parts)
    assert {Path(e.path).parent.name for e in run.entries} == {
        "001-layer",
        "002-layer",
        "003-hidden",
    }
    for name in run.layers:
        assert run.get(name, 2).shape == (50, 4)


@pytest.mark.parametrize("bad_dir", ["../escape", "..", "a/b", "/abs", ".hidden", ""])
def test_writer_refuses_a_layer_folder_outside_the_run(tmp_path: Path, bad_dir: str) -> None:
    info = {"fingerprint": "x", "layers": [{"name": "a", "dir": bad_dir}]}
    with pytest.raises(StoreError, match="layer folder"):
        RunWriter(tmp_path / "run", info)
    assert not (tmp_path / "run").exists()


# -- a folder as a pattern spec ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "contents", "found"),
    [
        ("pats", ["a.txt", "b.txt"], "a.txt, b.txt"),
        ("pats", [], "nothing"),
        ("pats", ["x.npy/"], "nothing"),  # a folder named like a file is no image either
        ("p.npy", ["a.txt"], "a.txt"),  # a folder named like an array file is read as a folder
    ],
)
def test_a_folder_of_non_images_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, contents: list[str], found: str
) -> None:
    folder = tmp_path / name
    folder.mkdir()
    for name in contents:
        if name.endswith("/"):
            (folder / name).mkdir()
        else:
            (folder / name).write_text("hello, not an image\n")
    assert capture(["--patterns", str(folder)], tmp_path / "run") == 2
    line = one_error(capsys)
    assert line == (
        f"passage: error: pattern folder {folder} holds no PNG/JPEG images (found: {found}); "
        "expected a folder of .png/.jpg files, or give an .npy/.npz file"
    )
    assert not (tmp_path / "run").exists()
