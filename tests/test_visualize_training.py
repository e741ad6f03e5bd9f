"""Training runs: ``[train] keep_weights`` keeps the weights of every recorded epoch (the
recorded data is what those weights compute), and ``visualize`` reloads them epoch by epoch
(the last one also from the training backup); an epoch whose weights are not kept is refused
with the list of kept ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

need_keras()

from pipeline import config as cfgmod  # noqa: E402
from pipeline import open_run  # noqa: E402
from pipeline.analysis import analyze  # noqa: E402
from pipeline.capturing.builtin_models import seed_model  # noqa: E402
from pipeline.capturing.training.trainer import train_and_capture  # noqa: E402
from pipeline.capturing.training.weights import kept_epochs, weights_file  # noqa: E402
from pipeline.capturing.visualize.reload import (  # noqa: E402
    load_run_model,
    pattern_inputs,
    weight_files,
)
from pipeline.capturing.visualize.runner import visualize  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.errors import ConfigError, SpecError  # noqa: E402
from pipeline.store.verify import check_run  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
TRAIN = {
    "capture": {"model": "builtin:seed", "architecture": False},
    "select": {"rule": "seed"},
    "train": {
        "dataset": "builtin:stripes:6",
        "epochs": 2,
        "batch_size": 10,
        "learning_rate": 0.002,
        "watch_per_class": 1,
    },
}


def train(out: Path, **train: object) -> Path:
    data = {**TRAIN, "capture": {**TRAIN["capture"], "out": str(out)}}
    data["train"] = {**TRAIN["train"], **train}
    train_and_capture(cfgmod.from_dict(data), quiet=True)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = train(tmp_path_factory.mktemp("train") / "run")
    analyze(out, top=2, cka=False, pictures=False, quiet=True)
    return out


def test_kept_weights_reproduce_every_recorded_epoch(trained, keras) -> None:
    run = open_run(trained)
    assert run.epochs == [0, 1, 2]
    assert list(kept_epochs(trained)) == [0, 1, 2]
    assert not [p for p in (trained / "weights").iterdir() if p.name.startswith(".tmp-")]
    x = pattern_inputs(run, range(run.num_patterns))  # the watched patterns, rebuilt
    assert x.shape == (5, 50, 50)
    for epoch in run.epochs:
        model = seed_model()
        model.load_weights(str(weights_file(trained, epoch)))
        sub = keras.Model(model.inputs, model.get_layer("my_dense").output)
        recorded = np.stack([run.get("my_dense", i, epoch=epoch) for i in range(5)])
        np.testing.assert_allclose(np.asarray(sub([x])), recorded, rtol=RTOL, atol=ATOL)
    # epoch 0 is the untrained model the seed builds; later epochs differ from it
    fresh = seed_model().get_weights()
    at = [load_run_model(run, e).get_weights() for e in (0, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(at[0], fresh, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(at[1], fresh, strict=True))


def test_visualize_two_epochs_of_a_training_run(trained, tmp_path, keras) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    report = visualize(
        out, layers=["my_dense"], epochs="0,2", channels="0-2", steps=8, samples=2, quiet=True
    )
    assert report.epochs == [0, 2] and report.channels == 6 and report.attributed
    assert len(report.pictures) == 4  # a sheet and a top sheet per epoch
    run = open_run(out)
    assert check_run(run).ok
    assert run.feature_epochs("my_dense") == [0, 2]
    for epoch in (0, 2):
        model = seed_model()
        model.load_weights(str(weights_file(out, epoch)))
        sub = keras.Model(model.inputs, model.get_layer("my_dense").output)
        got = run.features_of("my_dense", epoch)
        act = np.asarray(sub([got["images"]])).mean(axis=1)
        np.testing.assert_allclose(
            got["activation"], act[np.arange(3), np.arange(3)], rtol=RTOL, atol=ATOL
        )
        top = run.top_patterns("my_dense", 1, epoch)
        np.testing.assert_array_equal(top["index"], run.analysis("my_dense", epoch)["top_index"][1])
    # the images differ between epochs: the weights were reloaded per epoch
    assert not np.array_equal(
        run.feature("my_dense", 0, 0)["image"], run.feature("my_dense", 0, 2)["image"]
    )
    with pytest.raises(ConfigError, match=r"kept epochs: 0, 1, 2"):
        visualize(out, epochs="5", quiet=True)


def test_default_epochs_backup_fallback_and_no_kept_weights(tmp_path, capsys) -> None:
    out = train(tmp_path / "run", epochs=4, keep_weights=False)
    assert not (out / "weights").exists()
    run = open_run(out)
    assert run.epochs == [0, 1, 2, 3, 4]
    assert weight_files(run) == {4: out / "train-backup" / "epoch-4.weights.h5"}
    report = visualize(out, layers=["dense"], channels="0", steps=4, pictures=False, quiet=True)
    assert report.epochs == [4]  # only the last epoch's weights are there (the backup)
    capsys.readouterr()
    assert main(["visualize", str(out), "--epochs", "1", "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["passage: error: --epochs: no weights are kept for epoch(s) [1]; kept epochs: 4"]
    shutil.rmtree(out / "train-backup")
    with pytest.raises(ConfigError, match="keep_weights = true"):
        visualize(out, quiet=True)


def test_default_epochs_are_spaced_and_in_memory_training_runs_need_the_model(
    tmp_path, keras
) -> None:
    from pipeline.capturing.training.callback import CaptureCallback
    from pipeline.capturing.training.datasets import stripes

    x, y = stripes(2, seed=0)
    model = seed_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    out = tmp_path / "run"
    with CaptureCallback(out, x[:3], keep_weights=True) as cb:
        model.fit(x, y, epochs=6, batch_size=5, callbacks=[cb], verbose=0)
    assert list(kept_epochs(out)) == list(range(7))
    with pytest.raises(SpecError, match=r"model=the_model"):
        visualize(out, quiet=True)
    state = list(model.weights) + list(model.optimizer.variables)
    before = [np.array(v.numpy()) for v in state]
    report = visualize(
        out,
        model=model,
        patterns=x[:3],
        layers=["dense_2"],
        channels="0",
        steps=4,
        pictures=False,
        quiet=True,
    )
    assert report.epochs == [0, 2, 4, 6]  # 4 evenly spaced, first and last included
    # epoch 2 alone (done already): loaded into the model, then its own state put back (its
    # weights and its optimizer's, which the epoch's file holds too)
    again = visualize(out, model=model, patterns=x[:3], layers=["dense_2"], channels="0",
                      steps=4, epochs="2", pictures=False, quiet=True)  # fmt: skip
    assert again.computed == 0 and again.reused == 1
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(state, before, strict=True))
    with pytest.raises(SpecError, match="not those run"):
        visualize(out, model=model, patterns=x[1:4], quiet=True)
