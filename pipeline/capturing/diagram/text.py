"""The diagram's words and the room they take (pure).

Sizes are pixels of a page drawn at ``DPI`` in a monospaced font (DejaVu Sans Mono, shipped
with matplotlib: every character advances 0.602 em, which Agg's hinting rounds up to a whole
pixel), so a line's width is its length times ``CHAR_W`` and a label fits its box by
construction. Long names wrap after ``/``, else after ``_``,
``-``, ``.`` or a space (a hard cut only where a run of ``MAX_CHARS`` has none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .graph import SEP, GraphGroup, GraphNode, Shape

DPI = 100
FONT = "DejaVu Sans Mono"
FONT_PT = 9.0
EM = FONT_PT * DPI / 72  # 12.5 px: legible at 100 dpi
CHAR_W = float(math.ceil(0.602 * EM))  # 8 px
LINE_H = 1.3 * EM
PAD_X = 8.0
PAD_Y = 5.0
MAX_CHARS = 34  # the widest line of a box: "BatchNormalization (112, 112, 144)"
BREAKS = ("/", "_-. ")  # a path's separator first, then the others

MERGES = {"Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum", "Dot"}
_CATEGORIES = (  # first match wins: (category, words in the class name)
    ("input", ("InputLayer",)),
    ("conv", ("Conv",)),
    ("pool", ("Pool",)),
    ("norm", ("Normalization", "Rescaling")),
    ("activation", ("ReLU", "Activation", "Softmax", "Dropout")),
    ("dense", ("Dense", "Embedding", "Attention", "LSTM", "GRU", "RNN")),
    ("shape", ("Reshape", "Flatten", "Padding", "Cropping", "Permute", "Repeat", "Upsampling")),
)


def category(class_name: str) -> str:
    """A coarse kind of layer, for the box's color."""
    if class_name in MERGES:
        return "merge"
    for name, words in _CATEGORIES:
        if any(w.lower() in class_name.lower() for w in words):
            return name
    return "other"


def format_shape(shapes: Sequence[Shape]) -> str:
    """``(48, 48, 32)``; ``?`` for a free size; ``3 x (32,)`` for equal outputs."""

    def one(shape: Shape) -> str:
        dims = ["?" if d is None else str(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    if not shapes:
        return ""
    if len(shapes) > 1 and len(set(shapes)) == 1:
        return f"{len(shapes)} x {one(shapes[0])}"
    return " ".join(one(s) for s in shapes)


def wrap(text: str, width: int = MAX_CHARS) -> list[str]:
    """``text`` in lines of at most ``width`` characters, cut after a break character (a ``/``
    before the others) where one lies in the line's last two thirds."""
    lines: list[str] = []
    while len(text) > width:
        cut = width
        for chars in BREAKS:
            found = max(text.rfind(c, width // 3, width) for c in chars)
            if found >= 0:
                cut = found + 1
                break
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text] if text or not lines else lines


def own_name(path: str, group: str) -> str:
    """The name inside its group's frame (the frame names the group)."""
    return path[len(group) + len(SEP) :] if group and path.startswith(group + SEP) else path


def node_lines(node: GraphNode) -> tuple[tuple[str, ...], int]:
    """A box's lines and how many of them (the first) are its name."""
    name = wrap(own_name(node.name, node.group))
    shape = format_shape(node.shapes)
    calls = f" x{node.calls} calls" if node.calls > 1 else ""
    detail = f"{node.class_name} {shape}{calls}".strip()
    if len(detail) <= MAX_CHARS:
        rest = [detail]
    else:
        rest = wrap(node.class_name) + wrap(f"{shape}{calls}".strip())
    return tuple(name + [r for r in rest if r]), len(name)


def group_lines(group: GraphGroup) -> tuple[str, ...]:
    """A frame's label: its name, class and output shape."""
    text = (
        f"{own_name(group.name, group.parent)} ({group.class_name})"
        if group.class_name
        else group.name
    )
    shape = format_shape(group.shapes)
    return tuple(wrap(f"{text} {shape}".strip(), 2 * MAX_CHARS))


def text_size(lines: Sequence[str]) -> tuple[float, float]:
    """Width and height of ``lines`` with the padding of a box around them."""
    longest = max((len(line) for line in lines), default=0)
    return longest * CHAR_W + 2 * PAD_X, len(lines) * LINE_H + 2 * PAD_Y
