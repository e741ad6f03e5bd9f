"""A bench-local small CNN on 28x28x1 images (conv 16 -> conv 32 -> pool -> dense), used for
the CNN figure when ``pipeline.builtins.MODELS`` has no ``cnn`` (labelled as such)."""

from __future__ import annotations

from typing import Any

SPEC = "bench.cnn:small_cnn"


def small_cnn() -> Any:
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv1", kernel_initializer=init(1))(
        inputs
    )
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2", kernel_initializer=init(2))(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(
        10, activation="softmax", name="dense", kernel_initializer=init(3)
    )(x)
    return keras.Model(inputs, outputs, name="bench_cnn")


def cnn_spec() -> tuple[str, str]:
    """(model spec, label): ``builtin:cnn`` when the package ships it, else this module's."""
    from pipeline.builtins import MODELS

    if "cnn" in MODELS:
        return "builtin:cnn", "builtin:cnn"
    return SPEC, "bench-local CNN (builtin:cnn not in this branch)"
