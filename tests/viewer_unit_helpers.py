"""Runs with feature visualizations for the Unit view's tests: real Keras captures (a tiny RGB
CNN, the article's ``builtin:seed``), a training run written through the store, each
analyzed by ``analyze``; then features written with the store's ``FeatureWriter`` from
synthetic arrays (the top patterns are the analysis's real ones and their stored inputs), so
the viewer is tested without TensorFlow optimization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from analysis_helpers import write_run

from pipeline.analysis import analyze
from pipeline.store import open_run
from pipeline.store.feature_files import FeatureWriter, write_settings
from pipeline.store.lock import RunLock

RGB_SHAPE = (10, 12, 3)
N_RGB = 40
N_SEED = 30
K = 4  # top patterns per visualized channel
TRAIN_EPOCHS = [0, 2, 4]
TRAIN_VISUALIZED = [0, 4]
TRAIN_INPUT = (6, 7, 1)


def settings(space: str, low: float, high: float, channels: list[int], top: int) -> dict:
    return {
        "steps": 64,
        "seed": 3,
        "lr": 0.05,
        "size": None,
        "space": space,
        "low": low,
        "high": high,
        "preprocess": None,
        "transforms": space != "input",
        "top": top,
        "samples": 8,
        "noise": 0.15,
        "channels": channels,
        "batch": 4,
        "weights": "test",
        "version": 1,
    }


def write_features(
    root: Path,
    layer: str,
    epoch: int | None,
    channels: list[int],
    space: str,
    low: float,
    high: float,
    rng: np.random.Generator,
    top_channels: list[int] = (),
    inputs: np.ndarray | None = None,
    batch: int = 4,
) -> None:
    """Synthetic visualizations of ``channels`` (images a little beyond [low, high] to test
    clipping); for ``top_channels`` (one batch) the analysis's real top patterns, their
    stored inputs and random attribution maps."""
    run = open_run(root)
    shape = tuple(run.info["inputs"][0])
    a = run.analysis(layer, epoch)
    lock = RunLock(root)
    lock.acquire()
    try:
        _write_batches(
            root, layer, epoch, channels, shape, a, low, high, rng, top_channels, inputs, batch
        )
    finally:
        lock.release()
    write_settings(
        root, layer, epoch, settings(space, low, high, list(channels), K if top_channels else 0)
    )


def _write_batches(
    root, layer, epoch, channels, shape, a, low, high, rng, top_channels, inputs, batch
):
    span = high - low
    with FeatureWriter(root) as w:
        for at in range(0, len(channels), batch):
            part = channels[at : at + batch]
            first, count = part[0], len(part)
            assert part == list(range(first, first + count))
            arrays = {
                "image": rng.uniform(low - 0.03 * span, high + 0.03 * span, (count, *shape)),
                "activation": rng.uniform(1.0, 3.0, count),
            }
            if set(part) <= set(top_channels):
                index = np.asarray(a["top_index"])[part, :K].copy()
                if count > 1:
                    index[1, -1] = -1  # an empty slot (fewer patterns than K)
                value = np.asarray(a["top_value"])[part, :K].astype(np.float32)
                value[index < 0] = np.nan
                assert inputs is not None
                arrays.update(
                    attribution=rng.normal(size=(count, K, *shape)),
                    top_input=inputs[np.maximum(index, 0)],
                    top_index=index,
                    top_value=value,
                )
            w.write(layer, epoch, first, arrays)


def rgb_run(keras, root: Path) -> Path:
    """A tiny RGB CNN captured over 40 random images (inputs kept), analyzed with labels
    (3 classes); "conv" channels 0-5 visualized (0-3 with top patterns), "dense" 0-3."""
    from pipeline import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig

    keras.utils.set_random_seed(5)
    inp = keras.Input(RGB_SHAPE, name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, name="dense")(x)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).random((N_RGB, *RGB_SHAPE), dtype=np.float32)
    cfg = Config(
        capture=CaptureConfig(out=str(root), batch_size=16, keep_inputs=True),
        select=SelectConfig(rule="all"),
    )
    capture_model(model, cfg, x, quiet=True)
    labels = root.parent / f"{root.name}-labels.npy"
    np.save(labels, np.arange(N_RGB) % 3)
    analyze(root, labels=labels, workers=1, quiet=True, pictures=False, cka=False, top=K + 2)
    rng = np.random.default_rng(1)
    low, high = float(x.min()), float(x.max())
    write_features(root, "conv", None, list(range(6)), "image", low, high, rng, range(4), x)
    write_features(root, "dense", None, [0, 1, 2, 3], "image", low, high, rng)
    return root


def seed_run(root: Path) -> Path:
    """``builtin:seed`` over random:30 (inputs kept), analyzed; "my_dense" units 0-5
    visualized in the input space (50, 50), 0-3 with top patterns."""
    from pipeline import capture
    from pipeline.config import CaptureConfig, Config, SelectConfig

    cfg = Config(
        capture=CaptureConfig(
            model="builtin:seed", patterns="random:30", out=str(root), keep_inputs=True
        ),
        select=SelectConfig(rule="all"),
    )
    capture(cfg, quiet=True)
    analyze(root, workers=1, quiet=True, pictures=False, cka=False, top=K)
    run = open_run(root)
    inputs = np.concatenate([arr for _, arr in run.iter_input_chunks(run.inputs[0])])
    rng = np.random.default_rng(2)
    low, high = float(inputs.min()), float(inputs.max())
    write_features(
        root, "my_dense", None, list(range(6)), "input", low, high, rng, range(4), inputs
    )
    return root


def train_run(root: Path) -> Path:
    """A training run written through the store (3 epochs, 12 patterns, labels recorded),
    analyzed; "conv" visualized at epochs 0 and 4 (channels 0-4, 0-3 with top patterns)."""
    rng = np.random.default_rng(3)
    n = 12
    conv = rng.normal(size=(len(TRAIN_EPOCHS), n, 4, 4, 5)).astype("float32")
    labels = (np.arange(n) % 2).tolist()
    info = {
        "inputs": [list(TRAIN_INPUT)],
        "watch": {"labels": labels, "class_names": ["cat", "dog"]},
    }
    write_run(root, {"conv": conv}, batch=5, epochs=TRAIN_EPOCHS, info=info)
    analyze(root, workers=1, quiet=True, pictures=False, cka=False, top=K)
    inputs = rng.random((n, *TRAIN_INPUT)).astype("float32")
    for epoch in TRAIN_VISUALIZED:
        write_features(
            root, "conv", epoch, list(range(5)), "image", 0.0, 1.0, rng, range(4), inputs
        )
    return root


CNN_LAYER = "backbone/conv1"  # a layer name with a '/' (a nested model's layer)


def cnn_run(root: Path) -> Path:
    """``builtin:cnn`` over random:24 (inputs kept), analyzed, then ``pipeline.visualize``
    itself (TensorFlow, a few steps) on 8 channels of its first conv layer."""
    from pipeline import capture, visualize
    from pipeline.config import CaptureConfig, Config, SelectConfig

    cfg = Config(
        capture=CaptureConfig(
            model="builtin:cnn", patterns="random:24", out=str(root), keep_inputs=True
        ),
        select=SelectConfig(rule="all"),
    )
    capture(cfg, quiet=True)
    analyze(root, workers=1, quiet=True, pictures=False, cka=False, top=3)
    visualize(
        root,
        layers=[CNN_LAYER],
        channels="0-7",
        steps=16,
        top=3,
        samples=4,
        pictures=False,
        quiet=True,
    )
    return root
