"""Models the benchmarks bring as a user would (``module:function`` specs)."""

from __future__ import annotations

from typing import Any


def mobilenet_v2() -> Any:
    """Keras Applications MobileNetV2, random weights (seeded), 96x96 RGB input."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
