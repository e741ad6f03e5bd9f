"""Import TensorFlow/Keras with quiet logs and the TensorFlow backend (capture side only)."""

from __future__ import annotations

import os
from typing import Any


def keras_and_tf() -> tuple[Any, Any]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    return keras, tf
