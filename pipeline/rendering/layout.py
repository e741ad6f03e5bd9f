"""Pure layout logic for render: which array goes in which cell, page and image.

No matplotlib and no I/O here, so every rule is tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..store.stats import merge_ranges


def pages(n_cells: int, rows: int, cols: int) -> list[list[int]]:
    """Split cell indices 0..n_cells-1 into pages of rows*cols cells, in order."""
    per = rows * cols
    return [list(range(start, min(start + per, n_cells))) for start in range(0, n_cells, per)]


def near_square(n: int) -> tuple[int, int]:
    """(rows, cols) with rows*cols >= n, cols = ceil(sqrt(n)), as square as possible."""
    if n <= 0:
        return (0, 0)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows, cols


def vector_image(vec: np.ndarray, mode: str = "square") -> np.ndarray:
    """A (N,) vector as 2-D: a near-square image padded with NaN (drawn blank) or a 1xN strip."""
    vec = np.asarray(vec).reshape(-1)
    if mode == "strip":
        return vec[None, :]
    rows, cols = near_square(vec.size)
    out = np.full(rows * cols, np.nan, dtype=np.float32 if vec.dtype != np.float64 else vec.dtype)
    out[: vec.size] = vec
    return out.reshape(rows, cols)


def channel_mosaic(arr: np.ndarray, max_channels: int = 64, pad: int = 1) -> np.ndarray:
    """(H, W, C) as a near-square mosaic of its first ``max_channels`` channel maps.

    Tiles are separated by ``pad`` NaN pixels (drawn blank). Tile k (row-major) is channel k.
    """
    h, w, c = arr.shape
    c = min(c, max_channels)
    rows, cols = near_square(c)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), np.nan, np.float32)
    for k in range(c):
        r, q = divmod(k, cols)
        y, x = r * (h + pad), q * (w + pad)
        out[y : y + h, x : x + w] = arr[:, :, k]
    return out


def tile_origins(
    shape: tuple[int, int, int], max_channels: int = 64, pad: int = 1
) -> list[tuple[int, int]]:
    """Top-left (row, col) pixel of each channel tile in ``channel_mosaic`` (for labels)."""
    h, w, c = shape
    c = min(c, max_channels)
    _, cols = near_square(c)
    return [(divmod(k, cols)[0] * (h + pad), divmod(k, cols)[1] * (w + pad)) for k in range(c)]


def reduce_volume(arr: np.ndarray) -> np.ndarray:
    """(D, H, W, C) volume -> (H, W, C): the mean over depth D (each channel's average slice)."""
    return np.asarray(arr).mean(axis=0)


def to_image(arr: np.ndarray, vector: str = "square", max_channels: int = 64) -> np.ndarray:
    """Any per-pattern output as one 2-D image.

    rank 0 -> 1x1; (N,) -> ``vector_image`` (near-square padded with NaN, or a 1xN strip);
    (H, W) as is (a (T, F) sequence: time down, features across); (H, W, C) -> channel
    mosaic of the first ``max_channels`` channels; (D, H, W, C) -> mean over D
    (``reduce_volume``), then mosaic; higher ranks are flattened to (first axis, rest).
    """
    a = np.asarray(arr)
    if a.ndim == 0:
        return a.reshape(1, 1).astype(np.float32)
    if a.ndim == 1:
        return vector_image(a, vector)
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        return channel_mosaic(a, max_channels)
    if a.ndim == 4:
        return channel_mosaic(reduce_volume(a), max_channels)
    return a.reshape(a.shape[0], -1)


def channel_labels(
    shape: Sequence[int], max_channels: int = 64, pad: int = 1
) -> list[tuple[int, int, str]]:
    """(row, col, text) of the channel index label of each mosaic tile, for outputs of rank 3
    (H, W, C) and 4 (D, H, W, C); empty for other ranks (no tiles)."""
    if len(shape) not in (3, 4):
        return []
    h, w, c = (int(v) for v in shape[-3:])
    return [(r, q, str(k)) for k, (r, q) in enumerate(tile_origins((h, w, c), max_channels, pad))]


def rank_note(shape: Sequence[int], max_channels: int = 64) -> str:
    """What a cell shows beyond the raw array, for its title ('' when nothing to say)."""
    notes = []
    if len(shape) == 4:
        notes.append(f"mean over D={int(shape[0])}")
    if len(shape) in (3, 4) and int(shape[-1]) > max_channels:
        notes.append(f"channels 0-{max_channels - 1} of {int(shape[-1])}")
    if len(shape) > 4:
        notes.append("flattened")
    return ", ".join(notes)


def aspect_for(image_shape: tuple[int, ...], limit: float = 8.0) -> str:
    """'equal' pixels unless the image is a very long strip, which then fills the cell."""
    h, w = image_shape[0], image_shape[1]
    ratio = max(h, w) / max(min(h, w), 1)
    return "auto" if ratio > limit else "equal"


def shape_label(shape: Sequence[int | None]) -> str:
    text = ", ".join("None" if v is None else str(int(v)) for v in shape)
    return "(" + text + ("," if len(shape) == 1 else "") + ")"


def cell_title(name: str, shape: Sequence[int | None], max_channels: int | None = None) -> str:
    """The article's cell title: layer name and per-pattern output shape (plus, given
    ``max_channels``, a note on a reduced volume or a truncated mosaic)."""
    title = f"{name} {shape_label(shape)}"
    note = rank_note(shape, max_channels) if max_channels is not None else ""
    return f"{title}\n{note}" if note else title


def parse_indices(text: str, n: int) -> list[int]:
    """'0,3,5-9' -> sorted unique indices < n; '' -> all of range(n). A range is checked
    against ``n`` before it is expanded, so '0-99999999999' is an error, not a huge list."""
    if not text.strip():
        return list(range(n))
    picked: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            lo, sep, hi = part.partition("-")
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"pattern selection: expected '0,3,5-9', received {text!r}") from None
        if not 0 <= first <= last < n:
            raise ConfigError(
                f"pattern selection {part!r}: expected indices in 0..{n - 1}"
                + (" with the first <= the last" if first > last else "")
                + f", received {text!r}"
            )
        picked.update(range(first, last + 1))
    return sorted(picked)


def split_work(items: Sequence[int], parts: int, max_size: int = 256) -> list[list[int]]:
    """Contiguous pieces of ``items``: at least ``parts`` pieces where possible, each at most
    ``max_size`` long (so a progress bar moves and workers stay busy)."""
    n = len(items)
    if n == 0:
        return []
    size = max(1, min(max_size, math.ceil(n / max(parts, 1))))
    return [list(items[i : i + size]) for i in range(0, n, size)]


def color_limits(lo: float | None, hi: float | None) -> tuple[float, float]:
    """A color scale from the finite (min, max) of some data: (0, 1) when it has no finite
    value, widened by 0.5 on each side when it is flat."""
    if lo is None or hi is None:
        return (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def fixed_limits(mins: Sequence[float | None], maxs: Sequence[float | None]) -> tuple[float, float]:
    """One color scale over several files' (min, max): the smallest min and the largest max."""
    return color_limits(*merge_ranges(mins, maxs))
