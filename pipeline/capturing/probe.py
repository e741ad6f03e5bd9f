"""The probe: ONE multi-output Keras model over the selected layers, built once, called once
per batch through a traced function (no ``predict`` overhead, no retracing on a short last
batch).

Nested models. Layers inside nested ``Sequential``/functional sub-models (any depth) are listed
as ``outer/inner`` (Keras 3 forbids ``/`` in layer names, so the path is unambiguous). Their
``.output`` belongs to the sub-model's own graph, so ``keras.Model(outer.inputs, inner.output)``
fails (keras-team/keras#16123). When a selected layer is nested, the probe rebuilds the outer
graph with public API only: ``keras.models.clone_model`` with an identity ``clone_function``
(the very same layer objects, so weights are shared, nothing is copied) and a
``call_function`` that recurses into each sub-model instead of calling it as one layer, and
records every layer's first output tensor by path. The probe is then one model over those
tensors: still one forward pass per batch. Models without a selected nested layer use the
layers' own ``.output`` tensors directly, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import SpecError
from .framework import keras_and_tf
from .selection import LayerInfo

log = logging.getLogger(__name__)

SEP = "/"


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


def input_names(model: Any) -> list[str]:
    """Name of each model input, in the model's input order."""
    names = []
    for i, t in enumerate(model_inputs(model)):
        name = getattr(t, "name", None)
        names.append(str(name) if name else f"input_{i}")
    return names


def is_graph_model(layer: Any) -> bool:
    """A sub-model whose layers can be walked: ``Sequential`` or functional (not subclassed)."""
    keras, _ = keras_and_tf()
    if not isinstance(layer, keras.Model):
        return False
    if isinstance(layer, keras.Sequential):
        return True
    return hasattr(layer, "operations") and hasattr(layer, "outputs")


def count_params(layer: Any) -> int:
    """The layer's weight count; 0 for a layer that holds none or was never built."""
    try:
        return int(layer.count_params())
    except (ValueError, AttributeError):
        return 0


@dataclass(frozen=True)
class _Entry:
    info: LayerInfo
    tensor: Any  # the layer's own symbolic output (in its own model's graph)
    nested: bool  # inside a sub-model: needs the rebuilt graph


def _walk(model: Any, prefix: str, nested: bool, counter: list[int], out: list[_Entry]) -> None:
    keras, _ = keras_and_tf()
    for layer in model.layers:
        name = prefix + layer.name
        if is_graph_model(layer):
            _walk(layer, name + SEP, True, counter, out)
        index = counter[0]
        counter[0] += 1
        try:
            tensor = layer.output
        except (AttributeError, ValueError) as exc:
            log.info("layer %s has no single output (%s); it cannot be captured", name, exc)
            continue
        if isinstance(tensor, (list, tuple, dict)):
            log.info("layer %s has several outputs; it is skipped", name)
            continue
        info = LayerInfo(
            index=index,
            name=name,
            class_name=type(layer).__name__,
            shape=tuple(tensor.shape[1:]),
            is_input=isinstance(layer, keras.layers.InputLayer),
            params=count_params(layer),
        )
        out.append(_Entry(info, tensor, nested))


def _entries(model: Any) -> list[_Entry]:
    found: list[_Entry] = []
    _walk(model, "", False, [0], found)
    has_sub_models = any(e.nested for e in found)
    if has_sub_models and any(None in e.info.shape for e in found) and is_graph_model(model):
        # A sub-model declared with free sizes (e.g. Input((None, None, 3))) and called on a
        # fixed-size tensor: its layers' sizes are known only in the outer graph.
        _, tensors = rebuild_graph(model)
        found = [
            replace(e, info=replace(e.info, shape=tuple(tensors[e.info.name].shape[1:])))
            if e.info.name in tensors
            else e
            for e in found
        ]
    return found


def layer_infos(model: Any) -> list[LayerInfo]:
    return [e.info for e in _entries(model)]


def rebuild_graph(model: Any) -> tuple[list[Any], dict[str, Any]]:
    """Rebuild ``model``'s graph on new inputs from the same layer objects (shared weights),
    walking into nested sub-models. Returns the new inputs and every layer's first output
    tensor by path (``outer/inner``)."""
    keras, _ = keras_and_tf()
    recorded: dict[str, Any] = {}

    def keep(layer: Any) -> Any:
        return layer

    def caller(prefix: str) -> Callable[..., Any]:
        def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
            path = prefix + layer.name
            if is_graph_model(layer):
                feed = args[0] if len(args) == 1 else list(args)
                out = _run_sub_model(layer, feed, path + SEP)
            else:
                out = layer(*args, **kwargs)
            recorded.setdefault(path, out)
            return out

        return call

    def _run_sub_model(sub: Any, feed: Any, prefix: str) -> Any:
        if isinstance(sub, keras.Sequential):
            x = feed
            for layer in sub.layers:
                x = caller(prefix)(layer, x)
            return x
        clone = keras.models.clone_model(
            sub, input_tensors=feed, clone_function=keep, call_function=caller(prefix)
        )
        return clone.output

    if isinstance(model, keras.Sequential):
        inputs = [
            keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
            for t in model_inputs(model)
        ]
        _run_sub_model(model, inputs[0], "")
    else:
        clone = keras.models.clone_model(model, clone_function=keep, call_function=caller(""))
        inputs = list(clone.inputs)
    return inputs, recorded


class Probe:
    """Multi-output model over ``layers``; call it with one array per model input."""

    builds = 0  # how many probes were built in this process (tests check "built once")

    def __init__(self, model: Any, layers: Sequence[LayerInfo]) -> None:
        keras, tf = keras_and_tf()
        entries = {e.info.name: e for e in _entries(model)}
        missing = [info.name for info in layers if info.name not in entries]
        if missing:
            raise SpecError(
                f"model {model.name!r} has no capturable layer named {missing}; expected names "
                f"from: {', '.join(entries)}"
            )
        nested = any(entries[info.name].nested for info in layers)
        # Checked first: a subclassed model has no symbolic inputs either (model_inputs would
        # then say "no defined inputs", wrong for a model already called on data).
        if nested and not is_graph_model(model):
            raise SpecError(
                f"model {model.name!r} is a subclassed model; layers inside its sub-models "
                "cannot be reached. Select top-level layers, or build it as a functional "
                "or Sequential model"
            )
        inputs = model_inputs(model)
        if nested:
            graph_inputs, tensors = rebuild_graph(model)
            outputs = [tensors[info.name] for info in layers]
        else:
            graph_inputs = inputs
            outputs = [entries[info.name].tensor for info in layers]
        probe_model = keras.Model(inputs=graph_inputs, outputs=outputs, name=f"{model.name}_probe")
        self.dtypes = [np.dtype(t.dtype) for t in inputs]
        signature = [tf.TensorSpec(shape=(None, *t.shape[1:]), dtype=t.dtype) for t in inputs]

        @tf.function(input_signature=signature, reduce_retracing=True)
        def forward(*xs: Any) -> Any:
            outs = probe_model(list(xs), training=False)
            return outs if isinstance(outs, (list, tuple)) else [outs]

        self._forward = forward
        type(self).builds += 1

    def __call__(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        xs = [np.asarray(x, dtype=d) for x, d in zip(batch, self.dtypes, strict=True)]
        return [np.asarray(t) for t in self._forward(*xs)]
