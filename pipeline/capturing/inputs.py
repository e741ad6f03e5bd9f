"""A model's inputs: name, per-pattern shape and dtype of each, and how to hand a batch to the
model.

Functional and ``Sequential`` models declare symbolic inputs (``model.inputs``). A subclassed
model (``class Net(keras.Model)`` with a ``call``) has none: its inputs are what it was built
with, as Keras records them (``model.get_build_config()``: one shape, a list of shapes, or a
dict of shapes by name), in the model's input dtype. Such a model must have been called once
on data (or trained) before it is captured: ``model.build(shape)`` alone leaves the layers of a
subclassed model without weights (Keras warns about it), and there would be nothing to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from .framework import keras_and_tf


@dataclass(frozen=True)
class ModelInput:
    name: str
    shape: tuple[int | None, ...]  # per pattern (no batch axis)
    dtype: np.dtype
    batch: int | None = None  # a batch size the model's input declares (rare)


def is_graph_model(layer: Any) -> bool:
    """A model whose layers can be walked: ``Sequential`` or functional (not subclassed)."""
    keras, _ = keras_and_tf()
    if not isinstance(layer, keras.Model):
        return False
    if isinstance(layer, keras.Sequential):
        return True
    return hasattr(layer, "operations") and hasattr(layer, "outputs")


def model_inputs(model: Any) -> list[Any]:
    """A functional or Sequential model's symbolic inputs; a clear error for a model that was
    never built."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError) as exc:
        raise SpecError(
            f"model {model.name!r} has no defined inputs; build it with keras.Input(...) "
            "(or call it once on data) before capturing"
        ) from exc
    if not inputs:
        raise SpecError(f"model {model.name!r} has no inputs")
    return inputs


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(v is None or isinstance(v, int) for v in value)


def _built_shapes(model: Any) -> tuple[str, list[str], list[tuple[int | None, ...]]]:
    """(structure, names, full shapes) a subclassed model was built with."""
    config = model.get_build_config() if model.built else None
    shape = (config or {}).get("input_shape")
    if shape is None and model.built:
        raise SpecError(
            f"model {model.name!r} is a subclassed model whose input shape Keras did not record "
            "(get_build_config() is empty: its call could not run on symbolic tensors, e.g. "
            "Python `if` on tensor values); Passage runs models under tf.function, so make "
            "its call traceable (keras.ops.cond / ops.where) and call it once on data"
        )
    if shape is None:
        raise SpecError(
            f"model {model.name!r} is a subclassed model that was never called; call it once "
            "on a batch of data (model(x)) or train it before capturing, so that Keras knows "
            "its input shape"
        )
    if not model.weights and any(not layer.built for layer in model.layers):
        raise SpecError(
            f"model {model.name!r} was built with model.build() but its layers were not "
            "(a subclassed model without a build method); call it once on a batch of data "
            "(model(x)) before capturing"
        )
    if isinstance(shape, dict):
        return "dict", [str(k) for k in shape], [tuple(s) for s in shape.values()]
    if _is_shape(shape):
        return "single", ["input_0"], [tuple(shape)]
    shapes = [tuple(s) for s in shape]
    return "list", [f"input_{i}" for i in range(len(shapes))], shapes


def describe_inputs(model: Any) -> list[ModelInput]:
    """Each input of ``model``, in the order patterns are given."""
    if is_graph_model(model):
        return [
            ModelInput(
                str(getattr(t, "name", "") or f"input_{i}"),
                tuple(t.shape[1:]),
                np.dtype(t.dtype),
                t.shape[0],
            )
            for i, t in enumerate(model_inputs(model))
        ]
    _, names, shapes = _built_shapes(model)
    dtype = np.dtype(model.input_dtype)
    return [ModelInput(n, tuple(s[1:]), dtype) for n, s in zip(names, shapes, strict=True)]


def input_shapes(model: Any) -> list[tuple[int | None, ...]]:
    """Per-pattern shape of each model input (batch axis dropped)."""
    return [i.shape for i in describe_inputs(model)]


def input_names(model: Any) -> list[str]:
    """Name of each model input, in the model's input order."""
    return [i.name for i in describe_inputs(model)]


def feed(model: Any, xs: Sequence[Any]) -> Any:
    """The batch ``xs`` (one tensor per input) in the structure ``model`` is called with."""
    if is_graph_model(model):
        return xs[0] if len(xs) == 1 else list(xs)
    kind, names, _ = _built_shapes(model)
    if kind == "single":
        return xs[0]
    if kind == "dict":
        return dict(zip(names, xs, strict=True))
    return list(xs)
