"""What a summary sheet shows (pure, no matplotlib): its panel images, drawn by render's
rules (``rendering.layout.to_image``), where dead channels are marked on them, its title.

A channel is the last axis of a layer's output (each unit of a 1-D output). On the image of
an (H, W, C) or (D, H, W, C) output a dead channel is its mosaic tile; on a (N,) vector drawn
square it is one pixel; on a (T, F) image, or a higher rank flattened to (first axis, rest),
it is every image column that shows it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import layout


@dataclass(frozen=True)
class DeadMarks:
    """Where the dead channels of one output lie on its panel image (pixel coordinates)."""

    tiles: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row, col, h, w)
    pixels: list[tuple[int, int]] = field(default_factory=list)  # (row, col)
    columns: list[int] = field(default_factory=list)  # image columns
    hidden: int = 0  # dead channels past the mosaic's cap: counted, not drawn


def dead_marks(shape: Sequence[int], dead: np.ndarray, max_channels: int = 64) -> DeadMarks:
    """The marks of the channels flagged in ``dead`` (C,) on ``to_image`` of an output of
    per-pattern ``shape``."""
    shape = tuple(int(v) for v in shape)
    dead_idx = [int(k) for k in np.flatnonzero(np.asarray(dead, bool).reshape(-1))]
    if len(shape) in (3, 4):
        h, w, _ = shape[-3:]
        origins = layout.tile_origins(shape[-3:], max_channels)  # type: ignore[arg-type]
        shown = [k for k in dead_idx if k < len(origins)]
        return DeadMarks(
            tiles=[(*origins[k], h, w) for k in shown], hidden=len(dead_idx) - len(shown)
        )
    if len(shape) == 1:
        _, cols = layout.near_square(shape[0])
        return DeadMarks(pixels=[divmod(k, cols) for k in dead_idx])
    if len(shape) == 2:
        return DeadMarks(columns=dead_idx)
    if len(shape) > 4:
        c = shape[-1]
        rest = math.prod(shape[1:])
        flags = np.zeros(c, bool)
        flags[dead_idx] = True
        return DeadMarks(columns=[int(j) for j in np.flatnonzero(flags[np.arange(rest) % c])])
    return DeadMarks()


def panel_image(values: np.ndarray, max_channels: int = 64) -> np.ndarray:
    """One per-element statistic (shaped like a pattern's output) as its panel image, float32
    with NaN where there is nothing to draw (drawn blank)."""
    return np.asarray(layout.to_image(values, "square", max_channels), np.float32)


def finite_range(image: np.ndarray) -> tuple[float | None, float | None]:
    """(min, max) of the finite values of ``image``; (None, None) when it has none."""
    finite = np.asarray(image)[np.isfinite(image)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


def panel_limits(
    image: np.ndarray, fixed: tuple[float, float] | None = None
) -> tuple[float, float]:
    """A panel's color scale: ``fixed`` (fraction positive: 0..1), else its finite range."""
    return fixed if fixed is not None else layout.color_limits(*finite_range(image))


def dead_line(dead: np.ndarray) -> str:
    """'7 of 32 channels dead', 'no dead channel of 32'."""
    flags = np.asarray(dead, bool).reshape(-1)
    n, c = int(flags.sum()), flags.size
    unit = "channel" if c == 1 else "channels"
    return f"{n} of {c} {unit} dead" if n else f"no dead channel of {c}"


def sheet_title(
    layer: str,
    shape: Sequence[int],
    patterns: int,
    dead: np.ndarray,
    epoch: int | None = None,
    max_channels: int = 64,
) -> str:
    """'conv1 (26, 26, 32), 10000 patterns, epoch 3' over '7 of 32 channels dead' and what the
    maps show beyond the raw arrays (render's ``rank_note``)."""
    head = f"{layer} {layout.shape_label(shape)}, {patterns} pattern{'s' * (patterns != 1)}"
    head += f", epoch {epoch}" if epoch is not None else ""
    second = dead_line(dead)
    note = layout.rank_note(shape, max_channels)
    return f"{head}\n{second}" + (f"; maps: {note}" if note else "")


def histogram_edges(edges: np.ndarray) -> np.ndarray | None:
    """The histogram's bin edges as drawn: None when they are not finite (no finite value),
    spread by render's flat-scale rule (±0.5) when every value was the same."""
    e = np.asarray(edges, np.float64)
    if e.size < 2 or not np.all(np.isfinite(e)):
        return None
    if e[-1] > e[0]:
        return e
    lo, hi = layout.color_limits(float(e[0]), float(e[-1]))
    return np.linspace(lo, hi, e.size)


BAR_LIMIT = 64  # channels drawn as bars with error bars; more as a line with a band


def channel_style(channels: int) -> str:
    """'bars' for up to ``BAR_LIMIT`` channels, 'line' above."""
    return "bars" if channels <= BAR_LIMIT else "line"
