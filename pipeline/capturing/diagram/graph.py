"""The model's graph for the diagram (pure: no Keras): nodes, edges and groups.

Built from the layer calls recorded during one forward pass (``trace``): every call that
made no recorded call itself is a node (a box); a call that made some is a group (a labelled
frame around them: a nested model, a custom block, a layer built from layers). Names are paths
as in the store: ``outer/inner`` inside a group, ``name#2`` for a second call of one layer in
the same group. An edge joins the call that produced a tensor to each call that consumed it; a
tensor no recorded call produced (made by plain code inside a custom layer) is traced back to
what entered the enclosing group. For a model whose graph cannot be traced (a subclassed model
without symbolic inputs), ``chain_graph`` lists the layers in order and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

Shape = tuple[int | None, ...]
SEP = "/"


@dataclass(frozen=True)
class CallRecord:
    """One call made during the traced forward pass (what graph building needs of it)."""

    key: int  # unique; records are listed in the order the calls finished
    name: str  # the layer's (or operation's) own name
    class_name: str
    parent: int | None  # key of the call it happened inside; None: directly inside the model
    inputs: tuple[int, ...]  # identities of the tensors it received
    outputs: tuple[int, ...]  # identities of the tensors it returned
    shapes: tuple[Shape, ...]  # per-pattern shape of each output (batch axis dropped)


@dataclass(frozen=True)
class ModelInput:
    tensor: int  # identity of the tensor fed to the model
    name: str
    shape: Shape


@dataclass(frozen=True)
class GraphNode:
    name: str  # path: ``outer/inner``, ``name#2``
    class_name: str
    shapes: tuple[Shape, ...]
    group: str = ""  # path of the enclosing group; "" at the top level
    calls: int = 1  # calls drawn as this one node (a recurrent cell: one per time step)


@dataclass(frozen=True)
class GraphGroup:
    name: str
    class_name: str
    parent: str = ""
    shapes: tuple[Shape, ...] = ()  # per-pattern output shapes of its (first) call


@dataclass(frozen=True)
class ModelGraph:
    title: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]
    groups: tuple[GraphGroup, ...] = ()
    note: str = ""  # said in the picture (e.g. why the layers are drawn as a chain)


def _paths(calls: Sequence[CallRecord], max_repeats: int) -> dict[int, str]:
    """Each call's path. Calls of one layer name inside one group are numbered ``#2``, ``#3``
    (siblings never overlap, so the order they finished in is the order they were made in);
    more than ``max_repeats`` of them (a recurrent cell called once per time step) share one
    path."""
    children: dict[int | None, list[CallRecord]] = {}
    for call in calls:
        children.setdefault(call.parent, []).append(call)
    paths: dict[int, str] = {}

    def assign(parents: list[int | None], prefix: str) -> None:
        made = [c for p in parents for c in children.get(p, [])]
        total: dict[str, int] = {}
        for call in made:
            total[call.name] = total.get(call.name, 0) + 1
        seen: dict[str, int] = {}
        same_path: dict[str, list[int | None]] = {}
        for call in made:
            seen[call.name] = seen.get(call.name, 0) + 1
            n = seen[call.name]
            own = call.name if n == 1 or total[call.name] > max_repeats else f"{call.name}#{n}"
            paths[call.key] = prefix + own
            same_path.setdefault(prefix + own, []).append(call.key)
        for path, keys in same_path.items():
            assign(keys, path + SEP)

    assign([None], "")
    return paths


def _start_order(calls: Sequence[CallRecord]) -> list[CallRecord]:
    """Calls in the order they began: a group before the calls made inside it."""
    children: dict[int | None, list[CallRecord]] = {}
    for call in calls:  # finished order: siblings in the order they were made
        children.setdefault(call.parent, []).append(call)
    out: list[CallRecord] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        call = stack.pop()
        out.append(call)
        stack.extend(reversed(children.get(call.key, [])))
    return out


def build_graph(
    title: str,
    inputs: Sequence[ModelInput],
    calls: Sequence[CallRecord],
    max_repeats: int = 4,
) -> ModelGraph:
    """The graph of one traced forward pass (see the module docstring)."""
    by_key = {c.key: c for c in calls}
    unknown = [c.parent for c in calls if c.parent is not None and c.parent not in by_key]
    if unknown:
        raise ValueError(f"call records name parents that were not recorded: {unknown[:5]}")
    has_children = {c.parent for c in calls if c.parent is not None}
    paths = _paths(calls, max_repeats)
    last_leaf: dict[int, int] = {}  # group key -> the leaf inside it that finished last
    for call in calls:
        if call.key in has_children:
            continue
        parent = call.parent
        while parent is not None:
            last_leaf[parent] = call.key
            parent = by_key[parent].parent
    producer: dict[int, int] = {}
    for call in calls:  # an inner call returns a tensor before the group that passes it on
        for tensor in call.outputs:
            producer.setdefault(tensor, call.key)
    fed = {i.tensor: i.name for i in inputs}

    def sources(tensor: int, context: int | None) -> list[str]:
        if tensor in fed:
            return [fed[tensor]]
        if tensor in producer:
            key = producer[tensor]
            return [paths[last_leaf.get(key, key)]]
        if context is None:
            return []
        group = by_key[context]
        return [s for t in group.inputs for s in sources(t, group.parent)]

    nodes: dict[str, GraphNode] = {
        i.name: GraphNode(i.name, "InputLayer", (i.shape,)) for i in inputs
    }
    groups: dict[str, GraphGroup] = {}
    edges: dict[tuple[str, str], None] = {}
    for call in _start_order(calls):
        path = paths[call.key]
        parent_path = paths[call.parent] if call.parent is not None else ""
        if call.key in has_children:
            groups.setdefault(path, GraphGroup(path, call.class_name, parent_path, call.shapes))
            continue
        node = nodes.get(path) or GraphNode(path, call.class_name, call.shapes, parent_path, 0)
        nodes[path] = replace(node, calls=node.calls + 1)
        for tensor in call.inputs:
            for source in sources(tensor, call.parent):
                if source != path:
                    edges[(source, path)] = None
    return ModelGraph(title, tuple(nodes.values()), tuple(edges), tuple(groups.values()))


def chain_graph(
    title: str, nodes: Sequence[GraphNode], groups: Sequence[GraphGroup], note: str
) -> ModelGraph:
    """The layers in order, each feeding the next (a model whose graph cannot be traced)."""
    edges = tuple((a.name, b.name) for a, b in zip(nodes, nodes[1:], strict=False))
    return ModelGraph(title, tuple(nodes), edges, tuple(groups), note)
