"""Trace a Keras model's graph for the diagram (capture side: needs Keras).

One forward pass of a batch of one (zeros; a symbolic ``tf.function`` trace where an input
size is free) while ``keras.Layer.__call__`` and ``keras.Operation.__call__`` are wrapped to
record each call: which call it happened inside, which tensors it received and returned. The
wrappers are on the classes for the length of that one call and restored afterwards, even on
error; the model itself is not changed. Operations that are not layers are recorded only where
a model's graph calls them (``keras.ops`` in a functional model), not inside a layer's own
code. ``graph.build_graph`` turns the records into nodes, edges and groups.

A model that is not functional or ``Sequential`` (a subclassed model) or whose forward pass
fails here is drawn as a chain of its layers, in the order the model holds them, with a note
saying so.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from ..framework import keras_and_tf
from ..inputs import is_graph_model
from .graph import (
    SEP,
    CallRecord,
    GraphGroup,
    GraphNode,
    ModelGraph,
    ModelInput,
    Shape,
    build_graph,
    chain_graph,
)

log = logging.getLogger(__name__)


def _shape(tensor: Any) -> Shape:
    dims = tuple(tensor.shape)[1:]
    return tuple(None if d is None else int(d) for d in dims)


def _tensors(keras: Any, value: Any) -> list[Any]:
    return [t for t in keras.tree.flatten(value) if hasattr(t, "shape") and hasattr(t, "dtype")]


@contextlib.contextmanager
def _recording(keras: Any, records: list[CallRecord], keep: list[Any]) -> Iterator[None]:
    layer_call, op_call = keras.Layer.__call__, keras.Operation.__call__
    stack: list[tuple[int, Any]] = []
    counter = [0]

    def record(original: Any, op: Any, args: Any, kwargs: Any) -> Any:
        parent = stack[-1][0] if stack else None
        key = counter[0]
        counter[0] += 1
        received = _tensors(keras, (args, kwargs))
        stack.append((key, op))
        try:
            out = original(op, *args, **kwargs)
        finally:
            stack.pop()
        returned = _tensors(keras, out)
        keep.extend(received + returned)  # ids stay unique while the records are used
        records.append(
            CallRecord(
                key=key,
                name=str(op.name),
                class_name=type(op).__name__,
                parent=parent,
                inputs=tuple(id(t) for t in received),
                outputs=tuple(id(t) for t in returned),
                shapes=tuple(_shape(t) for t in returned),
            )
        )
        return out

    def on_layer_call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        return record(layer_call, layer, args, kwargs)

    def on_op_call(op: Any, *args: Any, **kwargs: Any) -> Any:
        inside_graph = not stack or isinstance(stack[-1][1], keras.Model)
        if isinstance(op, keras.Layer) or not inside_graph:
            return op_call(op, *args, **kwargs)
        return record(op_call, op, args, kwargs)

    keras.Layer.__call__, keras.Operation.__call__ = on_layer_call, on_op_call
    try:
        yield
    finally:
        keras.Layer.__call__, keras.Operation.__call__ = layer_call, op_call


def _input_names(keras: Any, model: Any, flat: list[Any]) -> list[str]:
    """The names of the model's ``InputLayer``s (as ``model.layers`` and the store list them),
    in the order of ``flat``; a tensor's own name where no input layer holds it."""
    layers = [la for la in model.layers if isinstance(la, keras.layers.InputLayer)]
    by_output = {id(la.output): la.name for la in layers}
    return [by_output.get(id(t), str(t.name)) for t in flat]


def _trace(model: Any) -> ModelGraph:
    keras, tf = keras_and_tf()
    structure = model.input
    flat = keras.tree.flatten(structure)
    names = _input_names(keras, model, flat)
    records: list[CallRecord] = []
    keep: list[Any] = []
    fed: list[ModelInput] = []

    def forward(*xs: Any) -> Any:
        keep.extend(xs)
        fed.extend(ModelInput(id(x), n, _shape(t)) for x, n, t in zip(xs, names, flat, strict=True))
        with _recording(keras, records, keep):
            return model(keras.tree.pack_sequence_as(structure, list(xs)), training=False)

    if all(None not in _shape(t) for t in flat):
        forward(*[tf.zeros((1, *_shape(t)), dtype=t.dtype) for t in flat])
    else:  # a free size: trace symbolically (no numbers computed)
        specs = [tf.TensorSpec((None, *_shape(t)), t.dtype) for t in flat]
        tf.function(forward, autograph=False).get_concrete_function(*specs)
    roots = [r.key for r in records if r.parent is None]
    if len(roots) != 1:
        raise ValueError(f"expected one call of the model itself, recorded {len(roots)}")
    root = roots[0]
    calls = [
        CallRecord(r.key, r.name, r.class_name, None if r.parent == root else r.parent,
                   r.inputs, r.outputs, r.shapes)
        for r in records
        if r.key != root
    ]  # fmt: skip
    return build_graph(model.name, fed, calls)


def _output_shapes(keras: Any, layer: Any) -> tuple[Shape, ...]:
    try:
        return tuple(_shape(t) for t in _tensors(keras, layer.output))
    except (AttributeError, ValueError):  # a layer of a subclassed model: no symbolic output
        return ()


def _chain(model: Any, note: str) -> ModelGraph:
    keras, _ = keras_and_tf()
    nodes: list[GraphNode] = []
    groups: list[GraphGroup] = []

    def walk(holder: Any, prefix: str) -> None:
        for layer in holder.layers:
            path, cls, group = prefix + layer.name, type(layer).__name__, prefix.rstrip(SEP)
            if is_graph_model(layer):
                groups.append(GraphGroup(path, cls, group, _output_shapes(keras, layer)))
                walk(layer, path + SEP)
            else:
                nodes.append(GraphNode(path, cls, _output_shapes(keras, layer), group))

    walk(model, "")
    return chain_graph(model.name, nodes, groups, note)


def _reason(exc: BaseException) -> str:
    """The first line of an error that says something: Keras wraps a layer's error in
    "Exception encountered when calling X.call()." and terminal colors."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    said = [line for line in lines if line and not line.startswith("Exception encountered")]
    return (said or [type(exc).__name__])[0][:200]


def model_graph(model: Any) -> ModelGraph:
    """The graph of ``model`` to draw: traced, or its layers as a chain (see the docstring)."""
    if not is_graph_model(model):
        return _chain(
            model,
            f"{type(model).__name__} {model.name!r} is a subclassed model: it has no graph to "
            "read, so its layers are drawn as a chain, in the order the model holds them",
        )
    try:
        return _trace(model)
    except Exception as exc:  # any failure of the user's model in this one pass
        first = _reason(exc)
        log.info(
            "tracing %s for its diagram failed (%s); drawing its layers as a chain",
            model.name,
            first,
        )
        return _chain(
            model,
            f"its graph could not be traced ({type(exc).__name__}: {first}), so its layers are "
            "drawn as a chain, in the order the model holds them",
        )
