"""The layers a functional or Sequential model's graph shows, and their symbolic outputs.

Nested models. Layers inside nested ``Sequential``/functional sub-models (any depth) are listed
as ``outer/inner`` (Keras 3 forbids ``/`` in layer names, so the path is unambiguous). Their
``.output`` belongs to the sub-model's own graph, so ``keras.Model(outer.inputs, inner.output)``
fails (keras-team/keras#16123). When a selected layer is nested, the probe rebuilds the outer
graph with public API only: ``keras.models.clone_model`` with an identity ``clone_function``
(the very same layer objects, so weights are shared, nothing is copied) and a
``call_function`` that recurses into each sub-model instead of calling it as one layer, and
records every layer's first output tensor by path (a sub-model's graph is cloned onto fresh
inputs and run on the outer tensor as one model over its layers' outputs).

Shared layers. A layer the top-level graph calls several times is listed once per call:
``name``, ``name#2``, ``name#3`` (each later call's tensor is that call node's output, in the
same graph). Inside a nested sub-model a shared layer is listed at its first call only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .framework import keras_and_tf
from .inputs import is_graph_model, model_inputs
from .intercept import SEP
from .selection import LayerInfo

log = logging.getLogger(__name__)


def count_params(layer: Any) -> int:
    """The layer's weight count; 0 for a layer that holds none or was never built."""
    try:
        return int(layer.count_params())
    except (ValueError, AttributeError):
        return 0


@dataclass(frozen=True)
class GraphEntry:
    info: LayerInfo
    layer: Any
    tensor: Any  # the layer's own symbolic output (in its own model's graph)
    nested: bool  # inside a sub-model: needs the rebuilt graph


def _walk(model: Any, prefix: str, nested: bool, counter: list[int], out: list[GraphEntry]) -> None:
    keras, _ = keras_and_tf()
    for layer in model.layers:
        name = prefix + layer.name
        if is_graph_model(layer):
            _walk(layer, name + SEP, True, counter, out)
        index = counter[0]  # counts the skipped layers too (run folders keep their names)
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
        out.append(GraphEntry(info, layer, tensor, nested))


def _later_calls(model: Any, layer: Any) -> list[Any]:
    """The output tensors of ``layer``'s second, third... call in ``model``'s own graph."""
    by_depth = getattr(model, "_nodes_by_depth", None) or {}
    in_graph = {id(node) for nodes in by_depth.values() for node in nodes}
    calls = [n for n in getattr(layer, "_inbound_nodes", [])[1:] if id(n) in in_graph]
    return [n.output_tensors for n in calls]


def _with_later_calls(model: Any, found: list[GraphEntry], counter: list[int]) -> list[GraphEntry]:
    """``found`` with an entry ``name#k`` after each top-level layer the graph calls again
    (numbered after every graph layer, so that existing runs keep their folder names)."""
    keras, _ = keras_and_tf()
    if isinstance(model, keras.Sequential):
        return found
    out: list[GraphEntry] = []
    for e in found:
        out.append(e)
        if e.nested or e.info.is_input or is_graph_model(e.layer):
            continue
        for call, tensors in enumerate(_later_calls(model, e.layer), start=2):
            name = f"{e.info.name}#{call}"
            if len(tensors) != 1:
                log.info("layer %s has several outputs; it is skipped", name)
                continue
            shape = tuple(tensors[0].shape[1:])
            info = replace(e.info, index=counter[0], name=name, shape=shape)
            counter[0] += 1
            out.append(GraphEntry(info, e.layer, tensors[0], False))
    return out


def graph_entries(model: Any) -> tuple[list[GraphEntry], int]:
    """Every layer the graph of ``model`` (functional or Sequential) shows, in model order,
    and the next free index."""
    found: list[GraphEntry] = []
    counter = [0]
    _walk(model, "", False, counter, found)
    found = _with_later_calls(model, found, counter)
    has_sub_models = any(e.nested for e in found)
    if has_sub_models and any(None in e.info.shape for e in found):
        # A sub-model declared with free sizes (e.g. Input((None, None, 3))) and called on a
        # fixed-size tensor: its layers' sizes are known only in the outer graph.
        _, tensors, _ = rebuild(model)
        found = [
            replace(e, info=replace(e.info, shape=tuple(tensors[e.info.name].shape[1:])))
            if e.info.name in tensors
            else e
            for e in found
        ]
    return found, counter[0]


def graph_containers(entries: list[GraphEntry]) -> frozenset[str]:
    """The paths whose layers the graph shows: the root ("") and every nested graph model
    (none for a model without a graph: a subclassed model)."""
    if not entries:
        return frozenset()
    return frozenset([""] + [e.info.name for e in entries if is_graph_model(e.layer)])


def anchors_of(entries: list[GraphEntry]) -> dict[int, str]:
    """Layer id -> graph path (the first path of a layer object listed twice)."""
    anchors: dict[int, str] = {}
    for e in entries:
        anchors.setdefault(id(e.layer), e.info.name)
    return anchors


def rebuild(model: Any) -> tuple[list[Any], dict[str, Any], list[Any]]:
    """Rebuild ``model``'s graph on new inputs from the same layer objects (shared weights),
    walking into nested sub-models. Returns the new inputs, every layer's first output tensor
    by path (``outer/inner``) and the model's outputs in the new graph."""
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
        # Cloned onto fresh inputs, then run on ``feed`` as one model whose outputs are the
        # sub-model's layer tensors: cloned straight onto an intermediate tensor of the outer
        # graph (a sub-model after another layer), Keras cannot connect the clone's outputs.
        feeds = feed if isinstance(feed, list) else [feed]
        fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in feeds]
        before = set(recorded)
        clone = keras.models.clone_model(
            sub,
            input_tensors=fresh if isinstance(feed, list) else fresh[0],
            clone_function=keep,
            call_function=caller(prefix),
        )
        new = [p for p in recorded if p not in before]
        inner = keras.Model(fresh, [recorded[p] for p in new] + list(clone.outputs))
        result = inner(feeds)
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        recorded.update(zip(new, result, strict=False))
        outs = result[len(new) :]
        return outs[0] if len(outs) == 1 else outs

    if isinstance(model, keras.Sequential):
        inputs = [
            keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
            for t in model_inputs(model)
        ]
        outputs = [_run_sub_model(model, inputs[0], "")]
    else:
        clone = keras.models.clone_model(model, clone_function=keep, call_function=caller(""))
        inputs, outputs = list(clone.inputs), list(clone.outputs)
    return inputs, recorded, outputs
