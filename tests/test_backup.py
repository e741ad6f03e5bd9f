"""Training backup: atomic per-epoch weights, and a resumed fit that continues exactly."""

from __future__ import annotations

import numpy as np

from pipeline.capturing.training.backup import EpochBackup, latest


def _model(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    return model


def test_resume_from_backup_equals_uninterrupted_training(tmp_path, keras):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = x @ np.ones((4, 2), "float32")
    first = _model(keras)
    first.fit(
        x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[EpochBackup(tmp_path)]
    )
    assert latest(tmp_path)[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-3.weights.h5"]
    # a temporary file left by a save killed half-way is ignored by restore
    (tmp_path / "tmp-99.weights.h5").write_bytes(b"half written")
    straight = first.fit(x, y, epochs=5, initial_epoch=3, batch_size=16, shuffle=False, verbose=0)

    second = _model(keras)  # a fresh process would start from these fresh weights
    saver = EpochBackup(tmp_path, restore=True)
    assert saver.initial_epoch == 3
    resumed = second.fit(
        x, y, epochs=5, initial_epoch=saver.initial_epoch, batch_size=16, shuffle=False,
        verbose=0, callbacks=[saver],
    )  # fmt: skip
    # weights AND optimizer state (Adam moments, step count) were restored
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations)
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-5.weights.h5"]
