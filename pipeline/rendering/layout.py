"""Pure layout logic for render: which array goes in which cell, page and image.

No matplotlib and no I/O here, so every rule is tested directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from ..store.stats import merge_ranges

MAX_CHANNELS = 64  # channel maps a mosaic shows by default (the rest are cut; rank_note says so)


def pages(n_cells: int, rows: int, cols: int) -> list[list[int]]:
    """Split cell indices 0..n_cells-1 into pages of rows*cols cells, in order."""
    per = rows * cols
    return [list(range(start, min(start + per, n_cells))) for start in range(0, n_cells, per)]


PAGES_PER_LANE = 2  # fewest pages of a pattern a worker of a page group draws


def page_groups(cells_per_page: Sequence[int], workers: int) -> list[tuple[int, ...]]:
    """A pattern's pages (their cell counts) cut into contiguous groups, one per worker
    where there are pages enough (at least ``PAGES_PER_LANE`` each), of about equal cells.
    One group of every page when there is nothing to share."""
    n = len(cells_per_page)
    lanes = max(1, min(workers, n // PAGES_PER_LANE))
    total = sum(cells_per_page)
    groups: list[tuple[int, ...]] = []
    start, seen = 0, 0
    for k in range(1, lanes):
        end = start
        while end < n - (lanes - k) and seen + cells_per_page[end] / 2 <= total * k / lanes:
            seen += cells_per_page[end]
            end += 1
        end = max(end, start + 1)  # every group holds a page
        seen = sum(cells_per_page[:end])
        groups.append(tuple(range(start, end)))
        start = end
    groups.append(tuple(range(start, n)))
    return groups


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


def channel_mosaic(arr: np.ndarray, max_channels: int = MAX_CHANNELS, pad: int = 1) -> np.ndarray:
    """(H, W, C) as a near-square mosaic of its first ``max_channels`` channel maps.

    Tiles are separated by ``pad`` NaN pixels (drawn blank). Tile k (row-major) is channel k.
    """
    h, w, c = arr.shape
    c = min(c, max_channels)
    rows, cols = near_square(c)
    # one strided copy: channels padded to rows*cols tiles of (h+pad, w+pad), then interleaved
    tiles = np.full((h + pad, w + pad, rows * cols), np.nan, np.float32)
    tiles[:h, :w, :c] = arr[:, :, :c]
    out = tiles.reshape(h + pad, w + pad, rows, cols).transpose(2, 0, 3, 1)
    out = out.reshape(rows * (h + pad), cols * (w + pad))
    return out[: rows * (h + pad) - pad, : cols * (w + pad) - pad]


def mosaic_shape(
    shape: Sequence[int], max_channels: int = MAX_CHANNELS, pad: int = 1
) -> tuple[int, int]:
    """The shape of ``channel_mosaic`` of an (H, W, C) array, without building it."""
    h, w, c = (int(v) for v in shape)
    rows, cols = near_square(min(c, max_channels))
    return rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad


def mosaic_sources(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: Sequence[int],
    max_channels: int = MAX_CHANNELS,
    pad: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """For pixels (``rows``, ``cols``) of ``channel_mosaic`` of a C-contiguous (H, W, C) array:
    (which of them show a channel value, not padding; the flat index of that value)."""
    h, w, c = (int(v) for v in shape)
    n = min(c, max_channels)
    _, tile_cols = near_square(n)
    tr, y = np.divmod(np.asarray(rows, np.int64), h + pad)
    tc, x = np.divmod(np.asarray(cols, np.int64), w + pad)
    k = tr * tile_cols + tc
    ok = (y < h) & (x < w) & (tc < tile_cols) & (k < n)
    return ok, ((y * w + x) * c + k)[ok]


def tile_origins(
    shape: tuple[int, int, int], max_channels: int = MAX_CHANNELS, pad: int = 1
) -> list[tuple[int, int]]:
    """Top-left (row, col) pixel of each channel tile in ``channel_mosaic`` (for labels)."""
    h, w, c = shape
    c = min(c, max_channels)
    _, cols = near_square(c)
    return [(divmod(k, cols)[0] * (h + pad), divmod(k, cols)[1] * (w + pad)) for k in range(c)]


def reduce_volume(arr: np.ndarray) -> np.ndarray:
    """(D, H, W, C) volume -> (H, W, C): the mean over depth D (each channel's average slice)."""
    return np.asarray(arr).mean(axis=0)


def to_image(
    arr: np.ndarray, vector: str = "square", max_channels: int = MAX_CHANNELS
) -> np.ndarray:
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
    shape: Sequence[int], max_channels: int = MAX_CHANNELS, pad: int = 1
) -> list[tuple[int, int, str]]:
    """(row, col, text) of the channel index label of each mosaic tile, for outputs of rank 3
    (H, W, C) and 4 (D, H, W, C); empty for other ranks (no tiles)."""
    if len(shape) not in (3, 4):
        return []
    return list(_labels(tuple(int(v) for v in shape[-3:]), max_channels, pad))


@lru_cache(maxsize=1024)
def _labels(
    shape: tuple[int, ...], max_channels: int, pad: int
) -> tuple[tuple[int, int, str], ...]:
    origins = tile_origins(shape, max_channels, pad)  # type: ignore[arg-type]
    return tuple((r, q, str(k)) for k, (r, q) in enumerate(origins))


def rank_note(
    shape: Sequence[int], max_channels: int = MAX_CHANNELS, per_channel: bool = False
) -> str:
    """What a cell shows beyond the raw array, for its title ('' when nothing to say)."""
    notes = []
    if len(shape) == 4:
        notes.append(f"mean over D={int(shape[0])}")
    if len(shape) in (3, 4) and int(shape[-1]) > max_channels:
        notes.append(f"channels 0-{max_channels - 1} of {int(shape[-1])}")
    if len(shape) > 4:
        notes.append("flattened")
    if per_channel and len(shape) in (3, 4):
        notes.append("color scale per channel")
    return ", ".join(notes)


def aspect_for(image_shape: tuple[int, ...], limit: float = 8.0) -> str:
    """'equal' pixels unless the image is a very long strip, which then fills the cell."""
    h, w = image_shape[0], image_shape[1]
    ratio = max(h, w) / max(min(h, w), 1)
    return "auto" if ratio > limit else "equal"


def shape_label(shape: Sequence[int | None]) -> str:
    text = ", ".join("None" if v is None else str(int(v)) for v in shape)
    return "(" + text + ("," if len(shape) == 1 else "") + ")"


def cell_title(
    name: str,
    shape: Sequence[int | None],
    max_channels: int | None = None,
    per_channel: bool = False,
) -> str:
    """The article's cell title: layer name and per-pattern output shape (plus, given
    ``max_channels``, a note on a reduced volume, a truncated mosaic, a per-channel scale)."""
    title = f"{name} {shape_label(shape)}"
    note = rank_note(shape, max_channels, per_channel) if max_channels is not None else ""
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


# -- what a cell says about its values ------------------------------------------------------------
def shown_values(arr: np.ndarray, max_channels: int = MAX_CHANNELS) -> np.ndarray:
    """The values ``to_image`` shows of ``arr`` (its color scale and value range come from
    these): the first ``max_channels`` channels of a rank-3 map, of a rank-4 volume's mean."""
    a = np.asarray(arr)
    if a.ndim == 4:
        a = reduce_volume(a)
    if a.ndim == 3:
        return a[:, :, :max_channels]
    return a


def scale_channels(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) with each channel mapped to [0, 1] over its own finite min and max (a flat
    channel to 0.5, NaN and inf left as they are): the per-channel color scale."""
    a = np.asarray(arr, np.float32)
    finite = np.isfinite(a)
    lo = np.where(finite, a, np.inf).min(axis=(0, 1))
    hi = np.where(finite, a, -np.inf).max(axis=(0, 1))
    span = hi - lo
    flat = ~(span > 0)  # flat, or no finite value (inf - inf is NaN)
    out = (a - np.where(flat, 0, lo)) / np.where(flat, 1, span)
    return np.where(flat & finite, np.float32(0.5), out).astype(np.float32)


def number(v: float) -> str:
    """A value in a caption: 4 significant digits, '-0' as '0'."""
    text = f"{v:.4g}"
    return "0" if text == "-0" else text


def value_caption(lo: float | None, hi: float | None, nonfinite: int = 0) -> str:
    """The value range line under a cell's title: 'min -0.5, max 2' (+ ', 3 NaN/inf')."""
    if lo is None or hi is None:
        return f"no finite value ({nonfinite} NaN/inf)" if nonfinite else "no value"
    text = f"min {number(lo)}, max {number(hi)}"
    return text + (f", {nonfinite} NaN/inf" if nonfinite else "")


def constant_note(lo: float | None, hi: float | None) -> str | None:
    """'constant 0.25' for an output whose finite values are all equal; None otherwise."""
    if lo is None or hi is None or lo != hi:
        return None
    return f"constant {number(lo)}"


# -- titles that fit their cell ---------------------------------------------------------------------
Measure = Callable[[str], float]
# Break after '/', '_', '-' or a space, never inside the parentheses of a shape.
_BREAK = re.compile(r"(?<=[/_\- ])(?![^(]*\))")


def wrap_line(text: str, width: float, measure: Measure) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (as ``measure`` tells): after
    '/', '_', '-' or a space (a shape in parentheses stays whole), a word longer than a line
    is cut between characters."""
    lines: list[str] = []
    current = ""
    for token in (t for t in _BREAK.split(text) if t):
        if current and measure((current + token).rstrip()) > width:
            lines.append(current.rstrip())
            current = token.lstrip()
        else:
            current += token
        while len(current.rstrip()) > 1 and measure(current.rstrip()) > width:
            cut = len(current.rstrip()) - 1
            while cut > 1 and measure(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return lines


TITLE_SIZES = ((10.0, 2), (8.33, 3), (6.94, 3))  # (points, most lines) tried in turn


def fit_title(
    text: str,
    width: float,
    measure_at: Callable[[float], Measure],
    sizes: Sequence[tuple[float, int]] = TITLE_SIZES,
) -> tuple[list[str], float]:
    """(lines, font size) of a cell title that fits ``width``: each of its lines wrapped at the
    first size whose wrapping needs at most that size's line count; past the last size, the
    lines it allows, the last one ending in '...'. ``measure_at(size)`` measures at a size."""
    lines: list[str] = []
    for size, most in sizes:
        measure = measure_at(size)
        lines = [part for line in text.split("\n") for part in wrap_line(line, width, measure)]
        if len(lines) <= most:
            return lines, size
    size, most = sizes[-1]
    measure = measure_at(size)
    kept = lines[:most]
    last = kept[-1]
    while last and measure(last + "...") > width:
        last = last[:-1]
    kept[-1] = last + "..."
    return kept, size


def title_width(fig_w: float, cols: int, left: float, right: float, wspace: float) -> float:
    """Pixels a cell title may take: the distance between neighbouring cells' centres, and
    no more than twice the distance from an outer cell's centre to the page edge."""
    avail = (right - left) * fig_w
    axes_w = avail / (cols + (cols - 1) * wspace)
    pitch = axes_w * (1 + wspace) if cols > 1 else fig_w
    edge = 2 * min(left * fig_w, (1 - right) * fig_w) + axes_w
    return min(pitch, edge)


def grid_spacing(
    fig_h: float,
    rows: int,
    header: float,
    below: float,
    page_title: float,
    bottom: float = 0.11,
    top: float = 0.88,
) -> tuple[float, float]:
    """(top, hspace) for ``subplots_adjust`` (all lengths in the same unit as ``fig_h``):
    every row's ``header`` (its cells' titles and value lines) fits under the decorations of
    the row above (``below``: tick labels) and the first row's under the ``page_title``."""
    top = min(top, 1 - (page_title + header) / fig_h)
    gap = header + below
    if rows <= 1:
        return top, 0.2
    axes_h = ((top - bottom) * fig_h - (rows - 1) * gap) / rows
    return top, gap / max(axes_h, 1e-3 * fig_h)


def display_scale(box_w: float, box_h: float, image_shape: Sequence[int]) -> float:
    """Page pixels per image pixel of an image shown in a ``box_w`` x ``box_h`` axes slot
    (square pixels, as ``aspect_for`` draws all but very long strips)."""
    h, w = image_shape[0], image_shape[1]
    return min(box_w / max(w, 1), box_h / max(h, 1))


LABEL_POINTS = (7.0, 11.0)  # the smallest readable channel label, the largest useful


def label_points(tile_px: float, dpi: float, digits: int) -> float | None:
    """Font size (points) of the channel labels of mosaic tiles ``tile_px`` page pixels wide:
    about a third of a tile, at least ``LABEL_POINTS[0]``; None (no labels) when a label of
    ``digits`` digits at that size would cover more than 60 % of a tile's width or 45 % of
    its height."""
    low, high = LABEL_POINTS
    points = min(high, max(low, tile_px * 0.3 * 72 / dpi))
    em = points * dpi / 72
    if digits * 0.64 * em + 2 > 0.6 * tile_px or em > 0.45 * tile_px:
        return None
    return points


def page_name(index: int, n_pages: int) -> str:
    """File name of page ``index`` of ``n_pages``: zero-padded to the width of the page count,
    so file browsers sort them ('00.png' ... '17.png'; a single page is '0.png')."""
    return f"{index:0{len(str(n_pages))}d}.png"
