"""Example models shipped with the package (``builtin:NAME``); no downloads.

Weights are seeded, so ``builtin:seed`` is the same model in every process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import SpecError


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


MODELS: dict[str, Callable[[], Any]] = {
    "seed": seed_model,
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
