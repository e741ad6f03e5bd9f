"""Layers found by intercepting calls: what a custom layer or a subclassed model calls while
it runs (``intercept.py`` records the calls), listed from one symbolic trace of the model (no
data, nothing computed), with the reasons a call's output cannot be captured; and an error
raised while a model is traced, turned into one ``ModelRunError`` line.

A call is captured when its output is one tensor of the traced forward pass with the batch
axis first. Left out, with an info line: several outputs (an RNN cell's ``(h, [h, c])``), an
output inside a loop or branch of its caller (an RNN's cell inside its ``while`` loop), and an
output without the batch axis first (a layer inside ``TimeDistributed`` runs on batch x time
rows): the listing trace runs on ``LIST_BATCH`` patterns (or the batch size a model's input
declares), and an output whose first axis is not that size is not one row per pattern.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ModelRunError
from .framework import keras_and_tf
from .graph import count_params
from .inputs import describe_inputs, feed
from .intercept import Call, Tracer, intercepting
from .selection import LayerInfo

log = logging.getLogger(__name__)

LIST_BATCH = 3  # batch of the listing trace: an output whose first axis differs is not per pattern
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def holds_layers(layer: Any) -> bool:
    """Does ``layer`` keep other layers among its attributes (a custom block, a wrapper)?"""
    keras, _ = keras_and_tf()
    base = keras.layers.Layer
    for value in vars(layer).values():
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, base) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, base) for v in value)
        ):
            return True
    return False


def refusal(output: Any, graph: Any, batch: int | None) -> str | None:
    """Why an intercepted call's output cannot be captured (None: it can)."""
    _, tf = keras_and_tf()
    if isinstance(output, (list, tuple, dict)):
        return "has several outputs"
    if not isinstance(output, tf.Tensor):
        return f"returns a {type(output).__name__}, not a tensor"
    if output.graph is not graph:
        return "runs inside a loop or branch of its caller"
    if batch is not None and (output.shape.rank == 0 or output.shape[0] != batch):
        return f"has no batch axis first (shape {tuple(output.shape)} for {batch} patterns)"
    return None


def one_line(error: BaseException, limit: int = 300) -> str:
    text = _ANSI.sub("", str(error)).split("Arguments received by")[0]
    text = re.sub(r"^\s*Exception encountered when calling [^\n]*", "", text)
    text = " ".join(text.split()).rstrip(".") or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def model_runs(model: Any, tracer: Tracer) -> Iterator[None]:
    """Turn an error raised while ``model`` is traced into one ModelRunError line."""
    try:
        yield
    except Exception as exc:
        failure = tracer.failure
        where = "its forward pass"
        error: BaseException = exc
        if failure is not None:
            error = failure.error
            if failure.path is not None:
                where = f"layer {failure.path!r} ({failure.class_name})"
        shapes = ", ".join(str(i.shape) for i in describe_inputs(model))
        raise ModelRunError(
            f"Keras cannot run model {model.name!r}: {where} failed: {one_line(error)}. "
            f"Expected a model that runs on patterns of shape {shapes}; fix the model (call "
            "it on a batch in Python to see Keras' full traceback)"
        ) from exc


def trace_calls(model: Any, tracer: Tracer) -> tuple[Any, int]:
    """One symbolic trace of ``model`` with its layer calls recorded into ``tracer`` (nothing
    is computed). Returns the trace's graph and its batch size."""
    _, tf = keras_and_tf()
    inputs = describe_inputs(model)
    batch = next((i.batch for i in inputs if i.batch is not None), LIST_BATCH)
    specs = [tf.TensorSpec((batch, *i.shape), i.dtype) for i in inputs]
    graphs = []

    def trace(*xs: Any) -> None:
        graphs.append(xs[0].graph)
        with intercepting(tracer):
            model(feed(model, xs), training=False)

    with model_runs(model, tracer):
        tf.function(trace, autograph=False).get_concrete_function(*specs)
    return graphs[0], batch


def call_infos(calls: Sequence[Call], graph: Any, batch: int, first_index: int) -> list[LayerInfo]:
    """The capturable ``calls`` (made in ``graph`` on ``batch`` patterns), numbered from
    ``first_index`` in call order."""
    infos = []
    for i, call in enumerate(c for c in calls if not c.shown):
        reason = refusal(call.output, graph, batch)
        if reason:
            log.info("layer %s %s; it is skipped", call.path, reason)
            continue
        infos.append(
            LayerInfo(
                index=first_index + i,
                name=call.path,
                class_name=type(call.layer).__name__,
                shape=tuple(call.output.shape[1:]),
                params=count_params(call.layer),
            )
        )
    return infos
