"""Layer-call interception: which layers run inside a model, under which path, with which
output, seen while the probe's forward pass is traced.

Keras 3 has no public hook on layer calls, so ``intercepting(tracer)`` puts a wrapper in
place of ``keras.layers.Layer.__call__`` for the length of a ``with`` block and puts the
original back afterwards, also when the call raises. The wrapper records only for the thread
that entered the block (a thread-local tracer): a layer called at the same time by another
thread goes straight to Keras' own ``__call__``. Nested or concurrent blocks share one
installed wrapper (counted under a lock); the last one out restores Keras' method. The
user's model is not modified: no layer is wrapped, replaced or rebuilt.

Paths. The outermost call (the model being traced) is the root and is not recorded. A layer
called inside it is named after its caller, ``outer/inner``; ``anchors`` (layer id -> path)
give the layers a functional graph already names their graph path (``backbone/conv``), so the
layers inside them continue from there. A path called again in the same pass gets ``#2``,
``#3``, ... (and the layers inside that call continue from ``name#2``). Each call says whether
its caller is a container whose graph shows it (``shown``): a functional or Sequential model
listed in ``containers``, whose layers the graph walk captures already.

Names TensorFlow refuses. Keras accepts layer names with spaces or non-ASCII letters, but a
TensorFlow name scope does not (``is not a valid scope name``) and every layer call opens one.
While it runs under the tracer, such a layer is given a safe name (invalid characters become
``_``) and its own name back as soon as its call returns; paths use the layer's own name.

A call that raises is remembered (the innermost layer that failed and Keras' message) so that
the probe can say which layer could not run.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .framework import keras_and_tf

SEP = "/"
COUNT = "#"
_VALID = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.>-]*$")  # TensorFlow's op name rule, no '/'
_local = threading.local()
_lock = threading.Lock()
_users = 0
_original: Callable[..., Any] | None = None


def scope_safe(name: str) -> str:
    """``name`` as TensorFlow accepts it in a name scope (itself when it is already valid)."""
    if _VALID.match(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_.>-]", "_", name)
    return safe if _VALID.match(safe) else f"x{safe}"


def base_path(path: str) -> str:
    """``path`` without its call count: ``block#2`` -> ``block``."""
    head, sep, tail = path.rpartition(COUNT)
    return head if sep and tail.isdigit() and SEP not in tail else path


@dataclass(frozen=True)
class Call:
    """One layer call seen by a tracer, recorded when it returned."""

    path: str
    layer: Any
    output: Any
    shown: bool  # its caller is a graph container: the graph walk has it already


@dataclass(frozen=True)
class Failure:
    """The innermost layer call that raised."""

    path: str | None  # None: the root (the model traced) itself
    class_name: str
    error: BaseException


@dataclass
class Tracer:
    """Records the layer calls of one trace (see the module docstring)."""

    anchors: dict[int, str] = field(default_factory=dict)
    containers: frozenset[str] = frozenset()
    calls: list[Call] = field(default_factory=list)
    failure: Failure | None = None
    _stack: list[str] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget what an earlier trace recorded."""
        self.calls, self.failure, self._stack, self._counts = [], None, [], {}

    def by_path(self) -> dict[str, Call]:
        return {c.path: c for c in self.calls}

    def _path(self, layer: Any) -> str | None:
        if not self._stack:
            return None  # the root
        parent = self._stack[-1]
        base = self.anchors.get(id(layer))
        if base is None:
            base = f"{parent}{SEP}{layer.name}" if parent else layer.name
        n = self._counts[base] = self._counts.get(base, 0) + 1
        return base if n == 1 else f"{base}{COUNT}{n}"

    def call(self, original: Callable[..., Any], layer: Any, args: Any, kwargs: Any) -> Any:
        path = self._path(layer)
        parent = self._stack[-1] if self._stack else None
        self._stack.append(path or "")
        name = layer.name
        safe = scope_safe(name)
        if safe != name:
            layer.name = safe
        try:
            output = original(layer, *args, **kwargs)
        except Exception as exc:
            if self.failure is None:  # the innermost layer sees it first
                self.failure = Failure(path, type(layer).__name__, exc)
            raise
        finally:
            if safe != name:
                layer.name = name
            self._stack.pop()
        if path is not None and parent is not None:
            shown = base_path(parent) in self.containers
            self.calls.append(Call(path, layer, output, shown))
        return output


def _intercepted_call(layer: Any, *args: Any, **kwargs: Any) -> Any:
    tracer: Tracer | None = getattr(_local, "tracer", None)
    assert _original is not None  # installed only after _original was set
    if tracer is None:
        return _original(layer, *args, **kwargs)
    return tracer.call(_original, layer, args, kwargs)


@contextmanager
def intercepting(tracer: Tracer) -> Iterator[Tracer]:
    """Record this thread's layer calls into ``tracer`` for the length of the block."""
    global _users, _original
    keras, tf = keras_and_tf()
    base = keras.layers.Layer
    with _lock:
        if _users == 0:
            _original = base.__dict__["__call__"]
            base.__call__ = tf.autograph.experimental.do_not_convert(_intercepted_call)
        _users += 1
    previous = getattr(_local, "tracer", None)
    _local.tracer = tracer
    try:
        yield tracer
    finally:
        _local.tracer = previous
        with _lock:
            _users -= 1
            if _users == 0:
                base.__call__ = _original
