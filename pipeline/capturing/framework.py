"""Import TensorFlow/Keras with quiet logs and the TensorFlow backend (capture side only).

TensorFlow's C++ start-up banner (oneDNN notices, absl warnings) ignores TF_CPP_MIN_LOG_LEVEL,
so file descriptor 2 is pointed at /dev/null while TensorFlow is imported, unless
PASSAGE_TF_LOGS=1. Python exceptions raised by the import are not affected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    if os.environ.get("PASSAGE_TF_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_and_tf() -> tuple[Any, Any]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _quiet_fd2():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    import keras
    import tensorflow as tf

    return keras, tf
