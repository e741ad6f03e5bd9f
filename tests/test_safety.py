"""Safe names (no file outside the run, unique folders) and safe loading (.keras safe mode,
no pickles in .npy)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline.store.naming import data_path, layer_dir, slug

TRICKY = ["../../etc/passwd", "a/b", "with space", "dots.in.name", "..", ".", "ünïcødé", "层", ""]


@pytest.mark.parametrize("name", TRICKY)
def test_slug_is_safe(name):
    s = slug(name)
    assert s and not s.startswith(".")
    assert "/" not in s and "\\" not in s and ".." not in s
    assert s.isascii()


def test_layer_dirs_are_unique_and_inside():
    dirs = [layer_dir(i, n) for i, n in enumerate(TRICKY)]
    assert len(set(dirs)) == len(dirs)
    for d in dirs:
        path = os.path.normpath(os.path.join("run", data_path(d, None, 0, "npy")))
        assert path.startswith("run" + os.sep + "data" + os.sep)
    assert layer_dir(3, "ünïcødé").startswith("003-unic")
    assert layer_dir(1, "a/b") != layer_dir(2, "a_b")


keras = pytest.importorskip("keras")


def test_capture_with_dotted_and_nested_names_writes_only_inside(tmp_path):
    from pipeline.capturing.stream import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig

    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="..")], name="..sub")
    x_in = keras.Input((4,))
    x = keras.layers.Dense(3, name="...")(x_in)
    model = keras.Model(x_in, keras.layers.Dense(2, name="a.b")(inner(x)))
    run_dir = tmp_path / "inside" / "run"
    cfg = Config(
        capture=CaptureConfig(out=str(run_dir), architecture=False, batch_size=2),
        select=SelectConfig(rule="all"),
    )
    run = capture_model(model, cfg, patterns=np.ones((3, 4), np.float32), quiet=True)
    assert run.layers == ["...", "..sub/..", "..sub", "a.b"]
    assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["run"]
    for path in run_dir.rglob("*"):
        assert path.resolve().is_relative_to(run_dir.resolve())
        assert ".." not in path.relative_to(run_dir).parts
    assert run.get("..sub/..", 0).shape == (2,)


def _lambda_model(path):
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    keras.Model(inputs, outputs).save(path)


def test_lambda_model_needs_unsafe(tmp_path):
    from pipeline.capturing.models import load_model
    from pipeline.errors import ModelLoadError

    path = tmp_path / "lambda.keras"
    _lambda_model(path)
    with pytest.raises(ModelLoadError, match="--unsafe") as info:
        load_model(str(path))
    assert "\n" not in str(info.value)
    model = load_model(str(path), unsafe=True)
    assert np.allclose(model(np.ones((1, 3), np.float32)), 2.0)


def test_lambda_model_cli_error_is_one_line(tmp_path, capsys):
    from pipeline.cli import main

    path = tmp_path / "lambda.keras"
    _lambda_model(path)
    code = main(
        [
            "-q",
            "capture",
            "--model",
            str(path),
            "--patterns",
            "random:1",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--unsafe" in err


def test_npy_pickles_refused_through_cli(tmp_path, capsys):
    from pipeline.cli import main

    np.save(tmp_path / "obj.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    code = main(
        ["-q", "capture", "--patterns", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "r")]
    )
    assert code == 2
    assert "pickled arrays are refused" in capsys.readouterr().err
