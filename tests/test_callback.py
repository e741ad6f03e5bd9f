"""CaptureCallback with real Keras: what it stores equals what the model computes at that moment,
it is built once, leaves training alone, and survives interruptions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = need_keras()

from pipeline import CaptureCallback, open_run  # noqa: E402
from pipeline.capturing.probe import Probe  # noqa: E402
from pipeline.config import SelectConfig  # noqa: E402
from pipeline.errors import ConfigError, SpecError, StoreError  # noqa: E402
from pipeline.store.verify import check_run  # noqa: E402

ALL = SelectConfig(rule="all")
REPO = Path(__file__).resolve().parents[1]


def tiny_model() -> keras.Model:
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=(6, 5), name="x")
    h = keras.layers.Dense(4, activation="relu", name="a", kernel_initializer=init(seed=1))(inputs)
    h = keras.layers.Dense(3, name="b", kernel_initializer=init(seed=2))(h)
    h = keras.layers.Flatten(name="flat")(h)
    out = keras.layers.Dense(2, activation="softmax", name="out", kernel_initializer=init(seed=3))(
        h
    )
    model = keras.Model(inputs, out, name="tiny")
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 5), dtype=np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0.5).astype(np.int64)
    return x, y


class SaveWeights(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.saved.append([np.array(w) for w in self.model.get_weights()])


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            raise RuntimeError("interrupted on purpose")


def outputs_with(weights: list[np.ndarray], names: list[str], x: np.ndarray) -> list[np.ndarray]:
    """Each named layer's output for ``x`` in a fresh model holding ``weights``."""
    model = tiny_model()
    model.set_weights(weights)
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = sub([x], training=False)
    return [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


def test_each_record_equals_the_model_with_the_weights_of_that_moment(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data()
    watch = x[:7]
    untrained = [np.array(w) for w in model.get_weights()]
    saver = SaveWeights()
    with CaptureCallback(tmp_path / "run", watch, select=ALL, batch_size=3) as cb:
        model.fit(x, y, epochs=3, batch_size=8, callbacks=[cb, saver], verbose=0)
    run = open_run(tmp_path / "run")
    assert run.is_training
    assert run.epochs == [0, 1, 2, 3]
    assert run.layers == ["a", "b", "flat", "out"]
    assert run.num_patterns == 7
    assert not np.allclose(untrained[0], saver.saved[-1][0])  # training did move the weights
    for key, weights in enumerate([untrained, *saver.saved]):
        expected = outputs_with(weights, run.layers, watch)
        for name, want in zip(run.layers, expected, strict=True):
            got = np.stack([run.get(name, i, epoch=key) for i in range(7)])
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} @{key}")
    assert not np.allclose(run.get("a", 0, epoch=0), run.get("a", 0, epoch=3))
    lines = run.metrics()
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert all({"loss", "accuracy", "step", "time"} <= set(m) for m in lines)
    assert check_run(run).ok


def test_probe_built_once_across_records_and_fits(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data()
    before = Probe.builds
    cb = CaptureCallback(tmp_path / "run", x[:4], select=ALL, every_batches=2)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[cb], verbose=0)
    model.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, callbacks=[cb], verbose=0)
    assert Probe.builds - before == 1
    assert cb.records > 3


def test_training_is_unchanged_by_the_callback(tmp_path: Path) -> None:
    x, y = data()
    finals = []
    for with_callback in (False, True):
        keras.utils.set_random_seed(3)
        model = tiny_model()
        optimizer = model.optimizer
        n_trainable = len(model.trainable_weights)
        callbacks = [CaptureCallback(tmp_path / "run", x[:5], select=ALL)] if with_callback else []
        history = model.fit(x, y, epochs=3, batch_size=8, callbacks=callbacks, verbose=0)
        assert model.optimizer is optimizer  # not recompiled
        assert len(model.trainable_weights) == n_trainable
        finals.append((model.get_weights(), history.history["loss"]))
    for a, b in zip(finals[0][0], finals[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert finals[0][1] == finals[1][1]


def test_interrupted_training_keeps_finished_epochs_and_resumes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data()
    cb = CaptureCallback(tmp_path / "run", x[:5], select=ALL)
    with pytest.raises(RuntimeError, match="on purpose"):
        # StopAt runs before the capture callback: epoch index 2 ends, then the fit dies.
        model.fit(x, y, epochs=6, batch_size=8, callbacks=[StopAt(2), cb], verbose=0)
    cb.close()
    run = open_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2]
    assert [m["epoch"] for m in run.metrics()] == [1, 2]
    assert run.get("b", 4, epoch=2).shape == (6, 3)
    assert check_run(run).ok
    # A new callback on the same run continues it: the fingerprint ignores the weights.
    again = CaptureCallback(tmp_path / "run", x[:5], select=ALL)
    model.fit(x, y, epochs=5, initial_epoch=2, batch_size=8, callbacks=[again], verbose=0)
    run = open_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2, 3, 4, 5]
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4, 5]
    assert check_run(run).ok


def test_a_hand_written_training_loop_can_drive_it(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data()
    cb = CaptureCallback(tmp_path / "run", x[:3], layers=["a"])
    cb.set_model(model)
    cb.on_train_begin()
    saved = []
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for first in range(0, 40, 8):
            loss = model.train_on_batch(x[first : first + 8], y[first : first + 8])
        cb.on_epoch_end(epoch, {"loss": loss[0]})
        saved.append([np.array(w) for w in model.get_weights()])
    cb.on_train_end()
    run = open_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2]
    assert [m["epoch"] for m in run.metrics()] == [1, 2]
    assert isinstance(run.metrics()[0]["loss"], float)
    (want,) = outputs_with(saved[1], ["a"], x[:3])
    np.testing.assert_allclose(run.get("a", 2, epoch=2), want[2], rtol=1e-5, atol=1e-6)


def test_every_n_epochs_and_the_last(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data()
    cb = CaptureCallback(tmp_path / "run", x[:2], layers=["b"], every=2)
    model.fit(x, y, epochs=5, batch_size=8, callbacks=[cb], verbose=0)
    run = open_run(tmp_path / "run")
    assert run.layers == ["b"]
    assert run.epochs == [0, 2, 4, 5] == cb.expected_keys(5)
    assert len(run.metrics()) == 5  # metrics every epoch, records every 2nd


def test_every_batches_keys_records_by_step(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data(40)  # 5 steps per epoch with batch 8
    cb = CaptureCallback(tmp_path / "run", x[:3], select=ALL, every_batches=2)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[cb], verbose=0)
    run = open_run(tmp_path / "run")
    assert run.info["time"]["unit"] == "step"
    assert run.epochs == [0, 2, 4, 5, 6, 8, 10] == cb.expected_keys(2, steps_per_epoch=5)
    epoch_lines = [m for m in run.metrics() if m.get("scope", "epoch") == "epoch"]
    assert [(m["epoch"], m["step"]) for m in epoch_lines] == [(1, 5), (2, 10)]
    batch_lines = [m for m in run.metrics() if m.get("scope") == "batch"]
    assert [m["step"] for m in batch_lines] == [2, 4, 6, 8, 10]


def test_batch_size_identifies_the_run_only_when_it_splits_the_patterns(tmp_path: Path) -> None:
    model = tiny_model()
    x, _ = data(10)

    def planned(n: int, batch: int) -> CaptureCallback:
        cb = CaptureCallback(tmp_path / "run", x[:n], select=ALL, batch_size=batch)
        cb.plan(model)
        return cb

    def fp(n: int, batch: int) -> str:
        return planned(n, batch).plan(model)["fingerprint"]

    assert fp(3, 4) == fp(3, 8)  # one batch either way: the same files
    assert fp(10, 4) != fp(10, 8)  # 3 files per record against 2: another layout
    auto = planned(3, 0)  # chosen by batch_mb, never more than the watched patterns
    assert auto.batch_size == 3 == auto.plan(model)["batch_size"]
    y = np.zeros(10, dtype=np.int64)
    first = CaptureCallback(tmp_path / "run", x, select=ALL, batch_size=4)
    model.fit(x, y, epochs=1, callbacks=[first], verbose=0)
    other = CaptureCallback(tmp_path / "run", x, select=ALL, batch_size=8)
    with pytest.raises(StoreError, match="what differs: the batch size: 4 in the run, 8 now;"):
        model.fit(x, y, epochs=1, callbacks=[other], verbose=0)


def test_a_second_fit_from_epoch_0_says_its_records_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = data(16)
    cb = CaptureCallback(tmp_path / "run", x[:2], layers=["b"])
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[cb], verbose=0)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    model.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, callbacks=[cb], verbose=0)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert open_run(tmp_path / "run").epochs == [0, 1, 2, 3]
    model.fit(x, y, epochs=1, batch_size=8, callbacks=[cb], verbose=0)  # from epoch 0 again
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1
    assert "up to epoch 3" in warned[0] and "initial_epoch=3" in warned[0]


def test_bad_arguments_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="every >= 1"):
        CaptureCallback(tmp_path / "run", np.zeros((1, 6, 5)), every=0)
    model = tiny_model()
    x, y = data(8)
    cb = CaptureCallback(tmp_path / "run", x[:1], layers=["nope"])
    with pytest.raises(SpecError, match="expected names among"):
        model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)


CONFIG = """
[capture]
model = "builtin:seed"
out = "{out}"
architecture = false

[train]
dataset = "builtin:stripes:60"
epochs = {epochs}
batch_size = 4
watch_per_class = 1
"""


@pytest.mark.slow
def test_sigkilled_capture_leaves_a_readable_run_and_resumes(tmp_path: Path) -> None:
    from pipeline.cli import main

    out = tmp_path / "run"
    cfg = tmp_path / "train.toml"
    cfg.write_text(CONFIG.format(out=out, epochs=400))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", "capture", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.jsonl"
            if metrics.exists() and metrics.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = open_run(out)
    done = max(m["epoch"] for m in run.metrics())
    assert done >= 3
    assert run.epochs[: done + 1] == list(range(done + 1))
    report = check_run(run)
    assert not report.corrupt and not report.missing
    assert run.get("my_dense", 0, epoch=done).shape == (50, 50)
    # The same command resumes (weights from train-backup/) and completes the run.
    target = max(run.epochs) + 2
    cfg.write_text(CONFIG.format(out=out, epochs=target))
    assert main(["-q", "capture", "--config", str(cfg)]) == 0
    run = open_run(out)
    assert run.epochs == list(range(target + 1))
    assert check_run(run).ok
