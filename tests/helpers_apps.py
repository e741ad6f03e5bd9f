"""Keras Applications models (nobody here wrote them) for tests/test_applications.py: built
seeded with ``weights=None`` at the smallest input they accept, what Keras itself computes for
each of their layers, and numpy checks that BatchNormalization and Dropout ran in inference
mode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SIZE = 32  # the smallest input side MobileNetV2, ResNet50, EfficientNetB0, DenseNet121 accept
APPLICATIONS = ("MobileNetV2", "ResNet50", "EfficientNetB0", "DenseNet121")


def vary_batchnorm(model: Any, seed: int) -> None:
    """Give every BatchNormalization layer random moving statistics, scale and offset. Fresh
    ones (mean 0, variance 1, gamma 1, beta 0) make inference mode nearly the identity, so a
    layer computed with the wrong statistics could pass unnoticed."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))


def build(name: str, size: int = SIZE, seed: int = 0) -> Any:
    """``keras.applications.<name>(weights=None, input_shape=(size, size, 3))``, seeded: the same
    weights in every process (the CLI's factory calls this too). Keras numbers the layers it
    names itself (``global_average_pooling2d``, ``_1``, ...) by what the process built before:
    a cleared session gives the names a fresh process (the CLI's) gives, in any test order."""
    import keras

    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
    vary_batchnorm(model, seed)
    return model


def patterns(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """``n`` images in [-1, 1] (MobileNetV2's and ResNet's preprocessed range)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n, size, size, 3)).astype(np.float32)


def captured_layers(model: Any) -> list[Any]:
    """The layers ``--select all`` captures: every one but the input layer, in model order."""
    import keras

    return [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]


def keras_outputs(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every captured layer's output on ``x`` as Keras computes it: one multi-output model over
    the layers' own ``.output`` tensors, called eagerly in inference mode (no Passage code)."""
    import keras

    layers = captured_layers(model)
    outputs = keras.Model(model.inputs, [la.output for la in layers])([x], training=False)
    return {la.name: np.asarray(out) for la, out in zip(layers, outputs, strict=True)}


def stored(run: Any, layer: str) -> np.ndarray:
    """A layer's stored outputs for every pattern of the run, stacked."""
    return np.stack([run.get(layer, i) for i in range(run.num_patterns)])


def differences(run: Any, expected: dict[str, np.ndarray]) -> dict[str, float]:
    """Per layer, the largest |stored - expected| relative to max(1, max |expected|): the
    scale float32 rounding errors grow with."""
    out = {}
    for name, want in expected.items():
        got = stored(run, name)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        assert got.dtype == np.float32, (name, got.dtype)
        out[name] = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
    return out


def producers(model: Any) -> dict[str, str]:
    """Layer name -> the name of the layer whose output it takes (single-input layers only),
    from the public ``.input``/``.output`` tensors."""
    by_tensor = {id(la.output): la.name for la in model.layers}
    found = {}
    for layer in model.layers:
        try:
            tensor = layer.input
        except (AttributeError, ValueError):
            continue
        if not isinstance(tensor, (list, tuple)) and id(tensor) in by_tensor:
            found[layer.name] = by_tensor[id(tensor)]
    return found


def batchnorm_inference(layer: Any, x: np.ndarray) -> np.ndarray:
    """BatchNormalization in inference mode, by hand: the moving statistics."""
    scale = np.asarray(layer.gamma) / np.sqrt(np.asarray(layer.moving_variance) + layer.epsilon)
    return (x - np.asarray(layer.moving_mean)) * scale + np.asarray(layer.beta)


def batchnorm_training(layer: Any, x: np.ndarray) -> np.ndarray:
    """BatchNormalization in training mode, by hand: the batch's own statistics."""
    axes = tuple(range(x.ndim - 1))
    scale = np.asarray(layer.gamma) / np.sqrt(x.var(axis=axes) + layer.epsilon)
    return (x - x.mean(axis=axes)) * scale + np.asarray(layer.beta)


def inference_mode_layers(model: Any, classes: Sequence[str]) -> list[tuple[Any, str]]:
    """(layer, name of its input's layer) for every layer of ``classes`` fed by one layer."""
    feeds = producers(model)
    return [
        (la, feeds[la.name])
        for la in model.layers
        if type(la).__name__ in classes and la.name in feeds
    ]


def pages_per_pattern(n_layers: int, rows: int = 3, cols: int = 3) -> int:
    return math.ceil(n_layers / (rows * cols))
