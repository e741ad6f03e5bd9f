"""Safe names: no file outside the run, unique folders. Safe loading (.keras safe mode, no
pickles in .npy/.npz) is tested end to end in test_hostile_inputs.py."""

from __future__ import annotations

import os

import numpy as np
import pytest
from externals import need_keras

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


keras = need_keras()


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
