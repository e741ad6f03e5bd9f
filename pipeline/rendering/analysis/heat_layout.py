"""How an annotated heatmap is laid out (pure, no matplotlib): figure size from the number of
rows and columns, shortened tick labels, whether values are written in the cells and at
which size, and in which ink so they stay legible on their cell's colour."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

NAME_LIMIT = 32  # characters a tick label keeps
ELLIPSIS = "…"
CELL_INCHES = (0.14, 0.55)  # smallest and largest cell side
SPAN_INCHES = 11.0  # what the cells of a small matrix spread over
WIDE_INCHES = 16.0  # what many thin columns share (classes x channels)
MIN_VALUE_POINTS = 6.0  # smaller values are not written
MAX_ANNOTATED = 60 * 60  # cells; more are left unwritten
TICK_POINTS = (5.5, 10.0)
THINNED_POINTS = 8.0  # labels of every n-th column


def shorten(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` in at most ``limit`` characters: its end kept (the innermost layer of a path
    'outer/inner/conv'), '…' in front when something was cut."""
    if len(name) <= limit:
        return name
    tail = name[-(limit - 1) :]
    cut = tail.find("/")
    if 0 <= cut < len(tail) - 8:  # start at a path separator when that keeps enough
        tail = tail[cut:]
    return ELLIPSIS + tail


def common_parts(names: Sequence[str]) -> tuple[int, int]:
    """How many leading and trailing path components ('a/b/c') all ``names`` share (at
    least one component of each name is left over)."""
    split = [n.split("/") for n in names]
    if len(set(names)) < 2:
        return 0, 0
    lead = 0
    while all(len(p) > lead + 1 for p in split) and len({p[lead] for p in split}) == 1:
        lead += 1
    trail = 0
    while (
        all(len(p) > lead + trail + 1 for p in split) and len({p[-1 - trail] for p in split}) == 1
    ):
        trail += 1
    return lead, trail


def short_names(names: Sequence[str], limit: int = NAME_LIMIT) -> list[str]:
    """Labels of at most ``limit`` characters that stay distinct where the names are: when a
    name is too long, the path components all names share at the start and the end become
    '…', then each is cut to its end (``shorten``); names whose ends still coincide keep
    their start and their end with '…' in the middle."""
    names = list(names)
    if all(len(n) <= limit for n in names):
        return names
    lead, trail = common_parts(names)
    kept = []
    for n in names:
        parts = n.split("/")
        middle = "/".join(parts[lead : len(parts) - trail])
        kept.append(f"{ELLIPSIS}/" * bool(lead) + middle + f"/{ELLIPSIS}" * bool(trail))
    short = [shorten(n, limit) for n in kept]
    seen: dict[str, int] = {}
    for s in short:
        seen[s] = seen.get(s, 0) + 1
    head = (limit - 1) // 2
    return [
        k[:head] + ELLIPSIS + k[-(limit - 1 - head) :] if seen[s] > 1 and s != k else s
        for k, s in zip(kept, short, strict=True)
    ]


@dataclass(frozen=True)
class HeatGeometry:
    """Sizes (inches, points) of one heatmap figure."""

    cell_w: float  # width of one cell
    cell_h: float  # height of one cell
    width: float
    height: float
    row_points: float  # row labels
    col_points: float  # column labels
    value_points: float | None  # None: values are not written in the cells
    rotate: int  # column labels' rotation in degrees
    col_step: int  # every how many columns a label is written


def _clamp(v: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, v))


def heat_geometry(
    rows: int,
    cols: int,
    row_chars: int,
    col_chars: int,
    value_chars: int = 4,
    square: bool = True,
) -> HeatGeometry:
    """Figure size and text sizes of a ``rows`` x ``cols`` heatmap whose longest row and
    column labels have ``row_chars`` and ``col_chars`` characters and whose cell values are
    written with ``value_chars`` characters.

    Square cells (a CKA matrix) spread over about ``SPAN_INCHES``, each between the
    ``CELL_INCHES`` bounds, every label written; otherwise (classes x channels) rows get
    their height and many columns share ``WIDE_INCHES`` (thin cells), their labels thinned
    to every ``col_step``-th.
    """
    lo, hi = CELL_INCHES
    if square:
        cell_h = cell_w = _clamp(SPAN_INCHES / max(rows, cols, 1), lo, hi)
    else:
        cell_h = _clamp(0.6 * SPAN_INCHES / max(rows, 1), lo, hi)
        cell_w = min(cell_h, WIDE_INCHES / max(cols, 1))
    row_pts = _clamp(cell_h * 72 * 0.7, *TICK_POINTS)
    col_pts = _clamp(cell_w * 72 * 0.7, *TICK_POINTS)
    col_step = 1
    if not square and col_pts * 1.3 > cell_w * 72:  # too thin for a label each: thin them out
        col_pts = THINNED_POINTS
        label = col_chars * 0.62 * col_pts + col_pts  # a horizontal label and a space
        col_step = tick_step(cols, int(cols * cell_w * 72 / label))
    cell = min(cell_w, cell_h) * 72
    value = min(9.0, cell_w * 72 * 0.85 / (0.62 * max(value_chars, 1)), cell_h * 72 * 0.55)
    written = value >= MIN_VALUE_POINTS and rows * cols <= MAX_ANNOTATED and cell > 0
    rotate = 90 if col_step == 1 and (cols > 12 or col_chars > 12) else 0
    char_in = 0.62 / 72
    left = row_chars * row_pts * char_in + 0.9
    bottom = (col_chars * col_pts * char_in if rotate else col_pts / 72) + 0.9
    return HeatGeometry(
        cell_w=cell_w,
        cell_h=cell_h,
        width=max(left + cols * cell_w + 1.6, 5.0),  # 1.6: the colorbar and its labels
        height=max(bottom + rows * cell_h + 1.0, 3.5),  # 1.0: the title
        row_points=row_pts,
        col_points=col_pts,
        value_points=value if written else None,
        rotate=rotate,
        col_step=col_step,
    )


def ink(rgb: Sequence[float]) -> str:
    """'white' on a dark cell colour, 'black' on a light one (relative luminance of sRGB)."""
    r, g, b = (float(v) for v in rgb[:3])
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45 else "black"


def cell_text(value: float, digits: int = 2) -> str:
    """A cell's written value: fixed decimals, '' for NaN."""
    if not math.isfinite(value):
        return ""
    text = f"{value:.{digits}f}"
    return "0" + text[text.index(".") :] if text.startswith("-0.") and float(text) == 0 else text


def wrap_title(title: str, width: float, points: float) -> str:
    """``title`` broken at spaces into lines that fit ``width`` inches at ``points``."""
    chars = max(20, int(width * 72 / (points * 0.56)))
    return "\n".join(textwrap.wrap(title, chars)) or title


def tick_step(n: int, most: int) -> int:
    """Label every ``step``-th of ``n`` rows or columns so at most ``most`` labels show."""
    return max(1, math.ceil(n / max(most, 1)))
