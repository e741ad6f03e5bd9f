"""The probe: ONE multi-output Keras model over the selected layers, built once, called once
per batch through a traced function (no ``predict`` overhead, no retracing on a short last
batch)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tf import keras_and_tf
from .errors import SpecError
from .select import LayerInfo

log = logging.getLogger(__name__)


def model_inputs(model: Any) -> list[Any]:
    """The model's symbolic inputs; a clear error for a model that was never built."""
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


def input_shapes(model: Any) -> list[tuple[int | None, ...]]:
    """Per-pattern shape of each model input (batch axis dropped)."""
    return [tuple(t.shape[1:]) for t in model_inputs(model)]


def layer_outputs(model: Any) -> list[tuple[LayerInfo, Any]]:
    """Every top-level layer with one symbolic output, in model order."""
    keras, _ = keras_and_tf()
    found: list[tuple[LayerInfo, Any]] = []
    for index, layer in enumerate(model.layers):
        try:
            out = layer.output
        except (AttributeError, ValueError) as exc:
            log.info("layer %s has no single output (%s); it cannot be captured", layer.name, exc)
            continue
        if isinstance(out, (list, tuple, dict)):
            log.info("layer %s has several outputs; it is skipped", layer.name)
            continue
        info = LayerInfo(
            index=index,
            name=layer.name,
            class_name=type(layer).__name__,
            shape=tuple(out.shape[1:]),
            is_input=isinstance(layer, keras.layers.InputLayer),
        )
        found.append((info, out))
    return found


def layer_infos(model: Any) -> list[LayerInfo]:
    return [info for info, _ in layer_outputs(model)]


class Probe:
    """Multi-output model over ``layers``; call it with one array per model input."""

    builds = 0  # how many probes were built in this process (tests check "built once")

    def __init__(self, model: Any, layers: Sequence[LayerInfo]) -> None:
        keras, tf = keras_and_tf()
        tensors = dict((info.name, out) for info, out in layer_outputs(model))
        self.layers = list(layers)
        self.inputs = model_inputs(model)
        self.model = keras.Model(
            inputs=self.inputs,
            outputs=[tensors[info.name] for info in self.layers],
            name=f"{model.name}_probe",
        )
        self.dtypes = [np.dtype(t.dtype) for t in self.inputs]
        signature = [tf.TensorSpec(shape=(None, *t.shape[1:]), dtype=t.dtype) for t in self.inputs]
        probe_model = self.model

        @tf.function(input_signature=signature, reduce_retracing=True)
        def forward(*xs: Any) -> Any:
            outs = probe_model(list(xs), training=False)
            return outs if isinstance(outs, (list, tuple)) else [outs]

        self._forward = forward
        type(self).builds += 1

    def __call__(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        xs = [np.asarray(x, dtype=d) for x, d in zip(batch, self.dtypes, strict=True)]
        return [t.numpy() for t in self._forward(*xs)]
