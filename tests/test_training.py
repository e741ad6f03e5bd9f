"""Training mode of ``passage capture``: datasets, config, train + capture end to end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

from pipeline import config as cfgmod
from pipeline.capturing.training.datasets import (
    STRIPE_CLASSES,
    load_dataset,
    stripes,
    watch_indices,
)
from pipeline.errors import ConfigError, PatternError, SpecError

REPO = Path(__file__).resolve().parents[1]


def test_stripes_are_deterministic_balanced_and_in_range() -> None:
    x, y = stripes(10, seed=3)
    x2, y2 = stripes(10, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (50, 50, 50) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [10] * len(STRIPE_CLASSES)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert not np.array_equal(stripes(10, seed=4)[0], x)
    # horizontal stripes: rows are (noisy) constants; vertical: columns are
    horizontal, vertical = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
    assert horizontal.std(axis=1).mean() < horizontal.std(axis=0).mean()
    assert vertical.std(axis=0).mean() < vertical.std(axis=1).mean()


def test_watch_indices_take_the_first_of_each_class() -> None:
    assert watch_indices(np.array([1, 0, 1, 2, 0, 2, 1]), 2) == [1, 4, 0, 2, 3, 5]
    assert watch_indices(np.array([[0, 1], [1, 0], [0, 1]]), 1) == [1, 0]


def test_npz_dataset_keys_and_shape_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((4, 50, 50)), labels=np.arange(4))
    data = load_dataset(str(path), [(50, 50)], x_key="images", y_key="labels")
    assert data.count == 4 and data.x.dtype == np.float32
    with pytest.raises(SpecError, match=r"x_key = 'x' is not in the archive; expected one of"):
        load_dataset(str(path), [(50, 50)])
    with pytest.raises(PatternError, match=r"expects \(28, 28\)"):
        load_dataset(str(path), [(28, 28)], x_key="images", y_key="labels")
    with pytest.raises(SpecError, match="expected one of: builtin:stripes"):
        load_dataset("builtin:nope", [(50, 50)])
    with pytest.raises(SpecError, match="N_PER_CLASS >= 1"):
        load_dataset("builtin:stripes:0", [(50, 50)])


def test_training_config_loads_and_validates(tmp_path: Path) -> None:
    cfg = cfgmod.load(REPO / "configs" / "training.toml")
    assert cfg.train is not None and cfg.train.dataset == "builtin:stripes"
    assert cfg.capture.model == "builtin:seed"
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\ndataset = "builtin:stripes"\nevery = 0\n')
    with pytest.raises(ConfigError, match="every"):
        cfgmod.load(bad)


TRAIN = """
[capture]
model = "builtin:seed"
out = "{out}"
architecture = false

[train]
dataset = "builtin:stripes:40"
epochs = 6
batch_size = 16
learning_rate = 0.002
watch_per_class = 1
"""


def test_capture_trains_learns_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    need_keras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline import open_run
    from pipeline.capturing.probe import Probe
    from pipeline.cli import main

    out = tmp_path / "run"
    cfg = tmp_path / "train.toml"
    cfg.write_text(TRAIN.format(out=out))
    builds = Probe.builds
    assert main(["-q", "capture", "--config", str(cfg)]) == 0
    assert Probe.builds - builds == 1
    run = open_run(out)
    assert run.is_training
    assert run.epochs == list(range(7))
    assert run.layers == ["dense", "my_dense", "dense_2"]
    assert run.num_patterns == 5
    assert run.info["watch"]["labels"] == [0, 1, 2, 3, 4]
    assert run.info["watch"]["class_names"] == list(STRIPE_CLASSES)
    metrics = run.metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert metrics[-1]["accuracy"] >= 0.9  # the article's model learns the stripes
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert (out / "train-backup").is_dir()  # kept: more epochs continue the training
    manifest = (out / "manifest.jsonl").read_bytes()
    assert main(["-q", "capture", "--config", str(cfg)]) == 0
    assert (out / "manifest.jsonl").read_bytes() == manifest
    assert Probe.builds - builds == 1  # complete already: no training, no probe
    # More epochs continue from the backup: one more epoch trained, not seven.
    cfg.write_text(TRAIN.format(out=out).replace("epochs = 6", "epochs = 7"))
    assert main(["-q", "capture", "--config", str(cfg)]) == 0
    run = open_run(out)
    assert run.epochs == list(range(8))
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4, 5, 6, 7]
    assert run.metrics()[-1]["loss"] <= metrics[-1]["loss"] * 1.5
    # Without resume an unfinished run cannot be continued: a clear error, exit status 2.
    cfg.write_text(TRAIN.format(out=out).replace("epochs = 6", "epochs = 9\nresume = false"))
    assert main(["-q", "capture", "--config", str(cfg)]) == 2
    assert open_run(out).epochs == list(range(8))


def test_watched_patterns_from_a_spec_honour_limit_and_buffered_io(tmp_path: Path) -> None:
    need_keras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.capturing.training.trainer import capture_callback, prepare

    text = TRAIN.format(out=tmp_path / "run").replace(
        "architecture = false", "architecture = false\nlimit = 3\ndirect_io = false"
    )
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text(text.replace("watch_per_class = 1", 'watch = "random:10:7"'))
    cfg = cfgmod.load(cfg_path)
    prep = prepare(cfg)
    assert prep.watch.shape[0] == 3  # [capture] limit applies to the watched patterns too
    assert prep.watch_info == {"spec": "random:10:7"}
    callback = capture_callback(cfg, prep)
    assert callback.direct_io is False  # --buffered-io reaches the training's writer
