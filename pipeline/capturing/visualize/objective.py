"""The objective: a layer's output as a differentiable function of the model's input, and a
channel's activation per batch row.

``layer_function`` reuses the capture probe (``Probe.symbolic``), so every layer capture can
store can be visualized: graph layers, layers of nested sub-models (``backbone/conv1``) and
calls only interception sees (a custom block's sublayers, a subclassed model's layers). A
channel's activation is the mean of ``output[..., c]`` over every other per-pattern axis, as
``analyze`` measures it, so a visualization's activation compares with the run's top values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import SpecError
from ..framework import keras_and_tf
from ..inputs import describe_inputs
from ..probe import Probe
from ..selection import LayerInfo
from .space import Space


def channel_count(layer: LayerInfo) -> int:
    """The layer's channels: its per-pattern output's last axis (1 for a scalar output)."""
    shape = layer.shape
    if shape and shape[-1] is None:
        raise SpecError(f"layer {layer.name!r} has no fixed channel count (shape {shape})")
    return int(shape[-1]) if shape else 1


def check_channels(layer: LayerInfo, channels: Sequence[int]) -> list[int]:
    """``channels`` as ints, each in [0, channel_count); SpecError otherwise."""
    count = channel_count(layer)
    out = [int(c) for c in channels]
    bad = [c for c in out if not 0 <= c < count]
    if bad:
        raise SpecError(
            f"layer {layer.name!r} has channels 0..{count - 1}; received {bad[:5]}"
            + (" ..." if len(bad) > 5 else "")
        )
    return out


def layer_function(model: Any, layer: LayerInfo) -> Callable[[Any], Any]:
    """x (n, *input) -> the layer's output (n, ...), differentiable: call it inside a
    ``tf.function`` (the probe is built once here; each call builds the model into the graph
    being traced). Single-input models only."""
    inputs = describe_inputs(model)
    if len(inputs) != 1:
        raise SpecError(
            f"model {model.name!r} has {len(inputs)} inputs; visualize and attribution "
            "optimize one input (single-input models only)"
        )
    probe = Probe(model, [layer])
    _, tf = keras_and_tf()
    dtype = inputs[0].dtype

    def output(x: Any) -> Any:
        return probe.symbolic([tf.cast(x, dtype)])[0]

    return output


def channel_activation(output: Any, channels: Any) -> Any:
    """(n,) float32: row i's mean of ``output[i, ..., channels[i]]`` over its other axes (a
    1-D output (n, units) gives ``output[i, channels[i]]``; a scalar output (n,) itself)."""
    _, tf = keras_and_tf()
    output = tf.cast(output, tf.float32)
    if output.shape.rank == 1:
        return output
    picked = tf.gather(output, tf.cast(channels, tf.int32), axis=-1, batch_dims=1)
    if picked.shape.rank == 1:
        return picked
    return tf.reduce_mean(picked, axis=list(range(1, picked.shape.rank)))


def model_input(images: Any, space: Space) -> Any:
    """Stored-space images -> what the model is fed (``preprocess`` for "pixels")."""
    if space.kind == "pixels" and space.preprocess is not None:
        return space.preprocess(images)
    return images
