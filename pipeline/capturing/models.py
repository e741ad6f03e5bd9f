"""Model specs: how users name the model to look into.

``path.keras`` / ``path.h5``, ``module:function`` (a factory returning a ``keras.Model``; the
module importable or a ``.py`` path), or ``builtin:NAME``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, SpecError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_callable(spec: str, what: str) -> Any:
    """Resolve ``module:function`` (module importable or a path to a .py file)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{what} spec {spec!r}: expected 'module:function'")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise SpecError(f"{what} spec {spec!r}: file {path} not found")
        mod_id = f"passage_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_id, path)
        if loader_spec is None or loader_spec.loader is None:
            raise SpecError(f"{what} spec {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_id] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise SpecError(f"{what} spec {spec!r}: importing {path} failed: {exc}") from exc
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecError(f"{what} spec {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(f"{what} spec {spec!r}: {module_name!r} has no {attr!r}") from None


def load_model(spec: str, unsafe: bool = False) -> Any:
    """Build or load the Keras model a spec names."""
    from .builtin_models import builtin_model
    from .framework import keras_and_tf

    keras, _ = keras_and_tf()

    if spec.startswith("builtin:"):
        return builtin_model(spec.split(":", 1)[1])
    if spec.lower().endswith(MODEL_SUFFIXES):
        path = Path(spec)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        try:
            return keras.saving.load_model(path, compile=True, safe_mode=not unsafe)
        except Exception as exc:
            text = str(exc)
            if "safe_mode" in text or "unsafe" in text.lower() or "lambda" in text.lower():
                raise ModelLoadError(
                    f"model {path} needs unsafe deserialization (it holds a Lambda layer or "
                    "custom code); pass --unsafe only if you trust this file"
                ) from exc
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise ModelLoadError(f"cannot load model {path}: {first}") from exc
    if ":" in spec:
        factory = load_callable(spec, "model")
        try:
            model = factory()
        except Exception as exc:
            raise SpecError(f"model factory {spec!r} failed: {exc}") from exc
        if not isinstance(model, keras.Model):
            raise SpecError(
                f"model factory {spec!r}: expected a keras.Model, received {type(model).__name__}"
            )
        return model
    raise SpecError(
        f"model spec {spec!r}: expected a .keras/.h5 file, 'module:function' or 'builtin:NAME'"
    )
