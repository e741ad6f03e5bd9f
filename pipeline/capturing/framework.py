"""Import TensorFlow/Keras with quiet logs and the TensorFlow backend (capture side only).

The probe traces models with TensorFlow, so Keras must run on it: before Keras is first
imported, ``use_tensorflow_backend`` sets ``KERAS_BACKEND=tensorflow`` whatever the environment
says (one logged notice when it replaces another value); once Keras runs on another backend in
this process, it raises a ``ConfigError`` that says so.

TensorFlow's C++ start-up banner (oneDNN notices, absl warnings) ignores TF_CPP_MIN_LOG_LEVEL,
so file descriptor 2 is pointed at /dev/null while TensorFlow is imported, unless
PASSAGE_TF_LOGS=1. Python exceptions raised by the import are not affected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)
BACKEND = "tensorflow"


def use_tensorflow_backend(what: str = "Passage's capture (and CaptureCallback)") -> None:
    """Make this process's Keras run on TensorFlow: set ``KERAS_BACKEND`` before Keras is
    imported; raise ``ConfigError`` (naming ``what``) when it runs on another backend."""
    keras = sys.modules.get("keras")
    if keras is not None:
        backend = keras.config.backend()
        if backend != BACKEND:
            raise ConfigError(
                f"{what} needs Keras on the TensorFlow backend (the probe traces the model with "
                f"TensorFlow), but Keras in this process runs on {backend!r}; set "
                f"KERAS_BACKEND={BACKEND} before the first `import keras` (`passage capture` "
                "sets it itself)"
            )
        return
    current = os.environ.get("KERAS_BACKEND")
    if current is not None and current != BACKEND:
        log.info(
            "KERAS_BACKEND=%s replaced by %s for this process: capture traces models with "
            "TensorFlow",
            current,
            BACKEND,
        )
    os.environ["KERAS_BACKEND"] = BACKEND


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
    use_tensorflow_backend()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _quiet_fd2():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    import keras
    import tensorflow as tf

    return keras, tf
