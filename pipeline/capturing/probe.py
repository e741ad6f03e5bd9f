"""The probe: ONE traced forward pass per batch that returns the outputs of the selected layers
(no ``predict`` overhead, no retracing on a short last batch), built and traced once.

Where each output comes from:

- Layers a functional or ``Sequential`` model's graph shows, nested sub-models included
  (``outer/inner``): their own symbolic outputs (``graph.py``: ``layer.output``, or the clone
  rebuild for layers inside sub-models), gathered by one Keras model over those tensors,
  exactly as before interception existed. A graph layer called twice is captured at its
  first call.
- What the graph cannot show: the layers a custom layer calls (a residual or transformer block
  holding ``Dense``/``Conv2D`` sublayers, a ``MultiHeadAttention``'s ``query``/``key``/
  ``value``/``attention_output``), in a functional model or not, and every layer of a
  subclassed model (``class Net(keras.Model)`` with a ``call``). Their calls are intercepted
  while the forward pass is traced (``intercept.py``) and their outputs become outputs of the
  same traced function. Named ``outer/inner`` after their caller, ``name#2``, ``name#3`` for
  the later calls of a layer in the same pass (a shared layer; ``block#2/dense`` inside a
  block's second call).

Listing (``layer_infos``). A subclassed model, or a functional model with a layer that holds
layers among its attributes, is traced once symbolically with interception (``calls.py``: no
data, nothing computed); other models are listed from their graph alone. Inner layers are
listed in call order just before the custom layer they run in (as a sub-model's layers come
before the sub-model) and numbered after the graph's layers, so the graph layers keep their
indices (and existing runs their folder names). Not listed: the model itself, ``InputLayer``,
and calls whose output cannot be captured (see ``calls.py``).

Gradients (``Probe.symbolic``): the same outputs built into a graph being traced elsewhere (a
``tf.function`` with a ``GradientTape``, as feature visualization and attribution need), by the
same code as the probe's own pass; capture itself does not use it.

Every trace runs under interception, which also gives layers whose names TensorFlow refuses in
a name scope (spaces, non-ASCII letters) a safe name for the length of their call: such models
are captured under their own names. A layer whose call raises while the probe is traced stops
it with ``ModelRunError``, one line naming the layer and Keras' message; the model and
``keras.layers.Layer`` are left as they were.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ModelRunError, SpecError
from .calls import call_infos, holds_layers, model_runs, one_line, refusal, trace_calls
from .framework import keras_and_tf
from .graph import (
    GraphEntry,
    anchors_of,
    graph_containers,
    graph_entries,
    rebuild,
)
from .inputs import describe_inputs, feed, is_graph_model, model_inputs
from .intercept import SEP, Tracer, intercepting
from .selection import LayerInfo


def _owner(path: str, blocks: Sequence[str]) -> str | None:
    """The custom layer (graph path) whose call ``path`` was made in."""
    for block in blocks:
        if path.startswith(block + SEP) or re.match(re.escape(block) + r"#\d+/", path):
            return block
    return None


def layer_infos(model: Any) -> list[LayerInfo]:
    """Every capturable layer of ``model`` in model order (see the module docstring)."""
    if not is_graph_model(model):
        graph, batch = trace_calls(model, tracer := Tracer())
        return call_infos(tracer.calls, graph, batch, 0)
    entries, next_index = graph_entries(model)
    blocks = [e for e in entries if not is_graph_model(e.layer) and holds_layers(e.layer)]
    if not blocks:
        return [e.info for e in entries]
    tracer = Tracer(anchors=anchors_of(entries), containers=graph_containers(entries))
    graph, batch = trace_calls(model, tracer)
    inner: dict[str | None, list[LayerInfo]] = {}
    names = [b.info.name for b in blocks]
    for info in call_infos(tracer.calls, graph, batch, next_index):
        inner.setdefault(_owner(info.name, names), []).append(info)
    listed: list[LayerInfo] = []
    for e in entries:
        listed += inner.pop(e.info.name, []) + [e.info]
    return listed + [info for rest in inner.values() for info in rest]


def _graph_probe(
    model: Any, entries: dict[str, GraphEntry], names: list[str], run_all: bool
) -> Any:
    """One Keras model over the graph outputs of the layers ``names`` (shared weights), and
    over the model's own outputs too when ``run_all`` (intercepted calls are inside its
    layers: the whole graph must run)."""
    keras, _ = keras_and_tf()
    # a sub-model's own output reached through the outer graph maps both graphs at once, and
    # Keras refuses names they share (an input called "image" in each): rebuild them as one
    if any(entries[n].nested or is_graph_model(entries[n].layer) for n in names):
        inputs, tensors, outputs = rebuild(model)
        wanted = [tensors[n] for n in names]
    else:
        inputs, outputs = model_inputs(model), list(model.outputs)
        wanted = [entries[n].tensor for n in names]
    if run_all:
        wanted += [t for t in outputs if not any(t is w for w in wanted)]
    return keras.Model(inputs, wanted, name=f"{model.name}_probe")


class Probe:
    """The selected ``layers``' outputs of ``model``, one traced forward pass per batch; call
    it with one array per model input. Traced when built: a model Keras cannot run raises
    ``ModelRunError`` here."""

    builds = 0  # probes built in this process (tests check "built once")
    traces = 0  # forward passes traced in this process (tests check "traced once")

    def __init__(self, model: Any, layers: Sequence[LayerInfo]) -> None:
        _, tf = keras_and_tf()
        inputs = describe_inputs(model)
        names = [info.name for info in layers]
        entries = graph_entries(model)[0] if is_graph_model(model) else []
        by_name = {e.info.name: e for e in entries}
        from_graph = [n for n in names if n in by_name]
        from_calls = [n for n in names if n not in by_name]
        tracer = Tracer(anchors=anchors_of(entries), containers=graph_containers(entries))
        probe_model = (
            _graph_probe(model, by_name, from_graph, bool(from_calls)) if entries else None
        )
        missing: list[str] = []

        def outputs(*xs: Any) -> list[Any]:
            tracer.reset()
            with intercepting(tracer):
                if probe_model is None:
                    outs = []
                    model(feed(model, xs), training=False)
                else:
                    outs = probe_model(list(xs), training=False)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            found = dict(zip(from_graph, outs, strict=False))
            calls = tracer.by_path()
            for name in from_calls:
                call = calls.get(name)
                if call is None or call.shown or refusal(call.output, xs[0].graph, None):
                    missing.append(name)
                    found[name] = tf.zeros((0,))
                else:
                    found[name] = call.output
            return [found[n] for n in names]

        @tf.function(
            input_signature=[tf.TensorSpec((None, *i.shape), i.dtype) for i in inputs],
            reduce_retracing=True,
            autograph=False,
        )
        def forward(*xs: Any) -> Any:
            type(self).traces += 1
            return outputs(*xs)

        with model_runs(model, tracer):
            forward.get_concrete_function()
        if missing:
            raise SpecError(
                f"model {model.name!r} has no capturable layer named {missing}; expected names "
                f"from: {', '.join(i.name for i in layer_infos(model))}"
            )
        self.dtypes = [i.dtype for i in inputs]
        self._forward = forward
        self._outputs = outputs
        self._tracer = tracer
        self._model = model
        type(self).builds += 1

    def symbolic(self, xs: Sequence[Any]) -> list[Any]:
        """The selected layers' outputs of the batch ``xs`` (one tensor per model input), built
        into the graph being traced: call it inside a ``tf.function`` (a ``GradientTape`` may
        watch ``xs``; the outputs are differentiable). Nothing is computed or counted as a
        probe trace, and the probe's own traced pass is unchanged."""
        with model_runs(self._model, self._tracer):
            return self._outputs(*xs)

    def __call__(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        _, tf = keras_and_tf()
        xs = [np.asarray(x, dtype=d) for x, d in zip(batch, self.dtypes, strict=True)]
        try:
            outs = self._forward(*xs)
        except tf.errors.OpError as exc:
            raise ModelRunError(
                f"Keras cannot run the model on this batch: {one_line(exc)}. Check the "
                "patterns (shape, value range) or the model"
            ) from exc
        return [np.asarray(t) for t in outs]
