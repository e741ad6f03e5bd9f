"""Example models shipped with the package (``builtin:NAME``); no downloads.

Weights are seeded, so ``builtin:seed`` is the same model in every process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SpecError


def seed_model() -> Any:
    """The article's model: Input(50, 50) -> Dense 75 -> Dense 50 "my_dense" -> Dense 25 ->
    Dense 10 -> Flatten -> Dense 5 softmax."""
    import keras

    def dense(units: int, name: str, seed: int, activation: str = "relu") -> Any:
        return keras.layers.Dense(
            units,
            activation=activation,
            name=name,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        )

    inputs = keras.Input(shape=(50, 50), name="input")
    x = dense(75, "dense", 1)(inputs)
    x = dense(50, "my_dense", 2)(x)
    x = dense(25, "dense_2", 3)(x)
    x = dense(10, "dense_3", 4)(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = dense(5, "output", 5, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="seed")


def _init(seed: int) -> Any:
    import keras

    return keras.initializers.GlorotUniform(seed=seed)


def cnn_model() -> Any:
    """A small CNN on 28x28x1 images with a nested functional backbone (itself holding a nested
    ``Sequential`` block): layers are named ``backbone/conv1``, ``backbone/block/conv2``, ..."""
    import keras

    L = keras.layers
    block = keras.Sequential(
        [
            keras.Input(shape=(13, 13, 8)),
            L.Conv2D(16, 3, activation="relu", name="conv2", kernel_initializer=_init(12)),
            L.MaxPooling2D(2, name="pool2"),
        ],
        name="block",
    )
    image = keras.Input(shape=(28, 28, 1), name="image")
    x = L.Conv2D(8, 3, activation="relu", name="conv1", kernel_initializer=_init(11))(image)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = block(x)
    backbone = keras.Model(image, x, name="backbone")

    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = backbone(inputs)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="dense", kernel_initializer=_init(13))(x)
    outputs = L.Dense(10, activation="softmax", name="output", kernel_initializer=_init(14))(x)
    return keras.Model(inputs, outputs, name="cnn")


def lstm_model() -> Any:
    """A small LSTM over sequences of 28 steps x 28 features (an image read row by row)."""
    import keras

    L = keras.layers
    inputs = keras.Input(shape=(28, 28), name="sequence")
    x = L.LSTM(
        32,
        return_sequences=True,
        name="lstm",
        kernel_initializer=_init(21),
        recurrent_initializer=keras.initializers.Orthogonal(seed=22),
    )(inputs)
    x = L.LSTM(
        16,
        name="lstm_2",
        kernel_initializer=_init(23),
        recurrent_initializer=keras.initializers.Orthogonal(seed=24),
    )(x)
    outputs = L.Dense(10, activation="softmax", name="output", kernel_initializer=_init(25))(x)
    return keras.Model(inputs, outputs, name="lstm")


MODELS: dict[str, Callable[[], Any]] = {
    "seed": seed_model,
    "cnn": cnn_model,
    "lstm": lstm_model,
}


def builtin_model(name: str) -> Any:
    try:
        factory = MODELS[name]
    except KeyError:
        raise SpecError(
            f"unknown builtin model {name!r}; expected one of: "
            + ", ".join(f"builtin:{n}" for n in sorted(MODELS))
        ) from None
    return factory()
