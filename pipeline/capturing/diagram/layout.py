"""Where the diagram's boxes, frames and arrows go (pure: no Keras, no matplotlib).

A layered (Sugiyama) layout from ``grandalf``, top to bottom, one group at a time from the
inside out: a group's content is laid out first, then stands as one block (its frame) in the
layout of the level around it, so a frame holds its own layers and nothing else. An arrow
between two levels follows the route of the level where its ends part, starting at its source
box and ending at its target box. Coordinates are pixels, y downwards. ``page_ranges`` cuts a
tall diagram into pages between rows of boxes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from .graph import ModelGraph
from .text import CHAR_W, LINE_H, PAD_Y, category, group_lines, node_lines, text_size, wrap

Point = tuple[float, float]
X_GAP = 24.0  # between boxes of one row
Y_GAP = 26.0  # between rows (room for the arrow heads)
FRAME_PAD = 10.0
MARGIN = 16.0
COMPONENT_GAP = 40.0


@dataclass(frozen=True)
class Box:
    name: str
    lines: tuple[str, ...]
    bold: int  # the first ``bold`` lines are the name
    category: str
    x: float  # top-left corner
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Frame:
    name: str
    lines: tuple[str, ...]
    depth: int  # 1 for a group at the top level, 2 inside it, ...
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Diagram:
    width: float
    height: float
    header: tuple[str, ...]  # the title lines (and the note, if any)
    boxes: tuple[Box, ...]
    frames: tuple[Frame, ...]
    arrows: tuple[Arrow, ...]


class _View:  # what grandalf reads and writes on a vertex
    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy: Point = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def setpath(self, points: list[Point]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


@dataclass
class _Block:
    """A laid-out level, in its own coordinates (top-left at 0, 0)."""

    w: float = 0.0
    h: float = 0.0
    rects: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # leaves
    frames: list[Frame] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)


def _shifted(block: _Block, dx: float, dy: float) -> _Block:
    return _Block(
        block.w,
        block.h,
        {k: (x + dx, y + dy, w, h) for k, (x, y, w, h) in block.rects.items()},
        [Frame(f.name, f.lines, f.depth, f.x + dx, f.y + dy, f.w, f.h) for f in block.frames],
        [
            Arrow(a.source, a.target, tuple((x + dx, y + dy) for x, y in a.points))
            for a in block.arrows
        ],
    )


def _sugiyama(
    sizes: dict[str, tuple[float, float]], links: Sequence[tuple[str, str]]
) -> tuple[dict[str, Point], dict[tuple[str, str], list[Point]]]:
    """Centers of the items and each link's route (through the rows it crosses), laid out by
    connected component, components side by side."""
    vertices = {name: Vertex(name) for name in sizes}
    for name, v in vertices.items():
        v.view = _View(*sizes[name])
    edges = []
    for a, b in links:
        e = Edge(vertices[a], vertices[b])
        e.view = _EdgeView()
        edges.append((a, b, e))
    graph = Graph(list(vertices.values()), [e for _, _, e in edges])
    order = {name: i for i, name in enumerate(sizes)}
    centers: dict[str, Point] = {}
    left = 0.0
    for component in sorted(graph.C, key=lambda c: min(order[v.data] for v in c.sV)):
        members = [v for v in component.sV]
        if len(members) > 1:
            # grandalf walks the graph recursively: deep enough for a chain of every vertex
            sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * len(members) + 1000))
            sug = SugiyamaLayout(component)
            sug.xspace, sug.yspace = X_GAP, Y_GAP
            sug.dw, sug.dh = 2.0, 2.0  # long edges' waypoints take no room
            roots = sorted((v for v in members if not v.e_in()), key=lambda v: order[v.data])
            sug.init_all(roots=roots or None)
            sug.draw()
        xs0 = min(v.view.xy[0] - v.view.w / 2 for v in members)
        ys0 = min(v.view.xy[1] - v.view.h / 2 for v in members)
        for v in members:
            centers[v.data] = (v.view.xy[0] - xs0 + left, v.view.xy[1] - ys0)
        for _, _, e in edges:
            if e.v[0] in component.sV:
                e.view.points = [(x - xs0 + left, y - ys0) for x, y in e.view.points]
        left += max(v.view.xy[0] + v.view.w / 2 for v in members) - xs0 + COMPONENT_GAP
    routes = {(a, b): e.view.points for a, b, e in edges}
    return centers, routes


class _Layout:
    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.groups = {g.name: g for g in graph.groups}
        self.group_of = {n.name: n.group for n in graph.nodes}
        self.chains: dict[str, list[str]] = {}

    def chain(self, name: str) -> list[str]:
        """The groups holding a node or group, outermost first, then itself."""
        if name not in self.chains:
            parent = self.group_of.get(name) or (
                self.groups[name].parent if name in self.groups else ""
            )
            self.chains[name] = (self.chain(parent) if parent else []) + [name]
        return self.chains[name]

    def block(self, group: str, depth: int) -> _Block:
        items: dict[str, tuple[float, float]] = {}
        inner: dict[str, _Block] = {}
        labels: dict[str, tuple[str, ...]] = {}
        leaves: dict[str, tuple[tuple[str, ...], int]] = {}
        for node in self.graph.nodes:
            if node.group == group:
                leaves[node.name] = node_lines(node)
                items[node.name] = text_size(leaves[node.name][0])
        for g in self.graph.groups:
            if g.parent == group:
                sub = self.block(g.name, depth + 1)
                labels[g.name] = group_lines(g)
                label_w, label_h = text_size(labels[g.name])
                inner[g.name] = sub
                items[g.name] = (
                    max(sub.w + 2 * FRAME_PAD, label_w),
                    sub.h + label_h + FRAME_PAD,
                )
        depth_here = len(self.chain(group)) if group else 0
        parted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for a, b in self.graph.edges:
            ca, cb = self.chain(a), self.chain(b)
            if len(ca) <= depth_here or len(cb) <= depth_here:
                continue
            if ca[:depth_here] != cb[:depth_here] or (group and ca[depth_here - 1] != group):
                continue
            ia, ib = ca[depth_here], cb[depth_here]
            if ia != ib and ia in items and ib in items:
                parted.setdefault((ia, ib), []).append((a, b))
        centers, routes = _sugiyama(items, list(parted))
        out = _Block()
        for name, (cx, cy) in centers.items():
            w, h = items[name]
            x, y = cx - w / 2, cy - h / 2
            out.w, out.h = max(out.w, x + w), max(out.h, y + h)
            if name in leaves:
                out.rects[name] = (x, y, w, h)
                continue
            label_h = text_size(labels[name])[1]
            sub = _shifted(inner[name], x + (w - inner[name].w) / 2, y + label_h)
            out.rects.update(sub.rects)
            out.frames.append(Frame(name, labels[name], depth, x, y, w, h))
            out.frames.extend(sub.frames)
            out.arrows.extend(sub.arrows)
        for link, pairs in parted.items():
            middle = routes[link][1:-1]
            for a, b in pairs:
                ax, ay, aw, ah = out.rects[a]
                bx, by, bw, _ = out.rects[b]
                points = ((ax + aw / 2, ay + ah), *middle, (bx + bw / 2, by))
                out.arrows.append(Arrow(a, b, points))
        return out


def layout(graph: ModelGraph) -> Diagram:
    """The whole diagram of ``graph``: a header (model name, layer count, note) above it."""
    lay = _Layout(graph)
    block = lay.block("", 1)
    count = f"{len(graph.nodes)} layers" + (f", {len(graph.groups)} groups" if graph.groups else "")
    chars = max(60, int(block.w // CHAR_W))
    header = tuple(wrap(f"{graph.title}: {count}", chars)) + (
        tuple(wrap(graph.note, chars)) if graph.note else ()
    )
    header_h = len(header) * LINE_H + 2 * PAD_Y
    body = _shifted(block, MARGIN, MARGIN + header_h)
    by_name = {n.name: n for n in graph.nodes}
    boxes = []
    for name, (x, y, w, h) in body.rects.items():
        lines, bold = node_lines(by_name[name])
        boxes.append(Box(name, lines, bold, category(by_name[name].class_name), x, y, w, h))
    width = max(block.w, max(len(line) for line in header) * CHAR_W) + 2 * MARGIN
    return Diagram(
        width=width,
        height=block.h + header_h + 2 * MARGIN,
        header=header,
        boxes=tuple(sorted(boxes, key=lambda b: (b.y, b.x))),
        frames=tuple(body.frames),
        arrows=tuple(body.arrows),
    )


def page_ranges(diagram: Diagram, max_height: float) -> list[tuple[float, float]]:
    """The diagram cut into pages no taller than ``max_height`` (where it can: a box taller
    than a page gets a page of its own height), each cut between rows of boxes."""
    busy = sorted((b.y - PAD_Y, b.y + b.h + PAD_Y) for b in diagram.boxes)
    pages: list[tuple[float, float]] = []
    top = 0.0
    while diagram.height - top > max_height:
        limit = top + max_height
        cut = None
        reach = top
        for y0, y1 in busy:  # a free gap starts where every box above it has ended
            if y0 >= limit:
                break
            if y0 > reach and reach > top:
                cut = (reach + y0) / 2
            reach = max(reach, y1)
        if cut is None or cut <= top:
            cut = max(limit, reach) if reach > limit else limit
        pages.append((top, cut))
        top = cut
    pages.append((top, diagram.height))
    return pages
