"""How a stored feature visualization, a top pattern and its attribution are shown: pure numpy,
the same rule as the viewer's unit page (``assets/unit.js``).

- ``image``/``pixels`` spaces: an (H, W, C) array, C in {1, 3}, scaled from the space's
  [low, high] to [0, 1] and clipped (one channel replicated to grey RGB).
- ``input`` space: the values themselves as a 2-D array for a colormap: a vector (L,) as one
  row (1, L), a matrix as it is, a higher-rank array as its mean over the trailing axes.
- an attribution: ``|map|`` summed over the colour (or trailing) axes, divided by its 99th
  percentile and clipped to [0, 1], drawn over its pattern as a semi-transparent "hot" overlay.

Arrays are enlarged by whole factors (``np.repeat``: every stored pixel stays one flat block)
and reduced by block means when larger than their cell, so a drawn picture can be compared
with its stored image pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPACES = ("image", "pixels", "input")
PERCENTILE = 99.0  # an attribution mask's 1.0
BAD = (221, 221, 221)  # a pixel that is not finite


def value_limits(low: float, high: float, values: np.ndarray | None = None) -> tuple[float, float]:
    """The scale shown from ``low`` to ``high`` (the run's pattern range); when those are not
    finite, the finite range of ``values``; widened by 0.5 each side when flat."""
    lo, hi = float(low), float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)) and values is not None:
        finite = np.asarray(values, np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def unit_scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped from [low, high] to [0, 1] and clipped (float64; NaN stays NaN)."""
    lo, hi = value_limits(low, high, values)
    a = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _check_space(space_kind: str) -> None:
    if space_kind not in SPACES:
        raise ValueError(f"space_kind: expected one of {SPACES}, received {space_kind!r}")


def _picture_axes(shape: tuple[int, ...], space_kind: str) -> None:
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(
            f"an {space_kind!r} space image must be (H, W, 1) or (H, W, 3), received shape {shape}"
        )


def as_plane(values: np.ndarray) -> np.ndarray:
    """A non-image array as the 2-D array drawn: (L,) -> (1, L), a scalar -> (1, 1),
    rank > 2 -> mean over the trailing axes."""
    a = np.asarray(values, np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim > 2:
        return a.mean(axis=tuple(range(2, a.ndim)))
    return a


def display_image(image: np.ndarray, space_kind: str, low: float, high: float) -> np.ndarray:
    """One stored image as drawn: (H, W, 3) floats in [0, 1] for the image/pixels spaces (grey
    replicated; NaN where a value is not finite), for "input" the 2-D array of values that a
    colormap shows (``as_plane``)."""
    _check_space(space_kind)
    a = np.asarray(image)
    if space_kind == "input":
        return as_plane(a)
    _picture_axes(a.shape, space_kind)
    rgb = unit_scale(a, low, high)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def attribution_mask(attribution: np.ndarray, space_kind: str) -> np.ndarray:
    """Where an attribution map points: ``|map|`` summed over the colour channels (image/pixels)
    or over the trailing axes (input; a vector as one row), divided by its 99th percentile and
    clipped: (H, W) in [0, 1] (all zeros for a map without a finite non-zero value)."""
    _check_space(space_kind)
    a = np.abs(np.asarray(attribution, np.float64))
    a[~np.isfinite(a)] = 0.0
    if space_kind == "input":
        if a.ndim > 2:
            a = a.sum(axis=tuple(range(2, a.ndim)))
        mask = as_plane(a)
    else:
        _picture_axes(a.shape, space_kind)
        mask = a.sum(axis=-1)
    top = float(np.percentile(mask, PERCENTILE)) if mask.size else 0.0
    if top <= 0.0:
        top = float(mask.max()) if mask.size else 0.0
    if top <= 0.0:
        return np.zeros(mask.shape, np.float64)
    return np.clip(mask / top, 0.0, 1.0)


def overlay(base: np.ndarray, mask: np.ndarray, lut: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """``base`` (H, W, 3) in [0, 1] with ``mask`` (H, W) in [0, 1] laid over it in the colours
    of ``lut`` ((N, 3) in [0, 1], e.g. "hot"): each pixel blended with weight ``alpha * mask``
    (a pixel where the mask is 0 keeps its colour exactly)."""
    m = np.clip(np.nan_to_num(np.asarray(mask, np.float64)), 0.0, 1.0)
    colour = np.asarray(lut, np.float64)[lut_index(m, 0.0, 1.0, len(lut))]
    w = (alpha * m)[..., None]
    return np.asarray(base, np.float64) * (1.0 - w) + colour * w


def lut_index(values: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """Colormap entries of ``values`` on the scale [lo, hi] with ``n`` entries, the way
    matplotlib picks them (``floor(x * n)``, the top end in the last); NaN -> 0."""
    with np.errstate(invalid="ignore"):
        x = (np.asarray(values, np.float64) - lo) / (hi - lo) * n
    x = np.nan_to_num(x, nan=0.0, posinf=n - 1, neginf=0.0)
    return np.clip(np.floor(x), 0, n - 1).astype(np.intp)


def rgb8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] as uint8 (rounded); a pixel with a NaN -> ``BAD``."""
    a = np.asarray(rgb, np.float64)
    bad = ~np.isfinite(a).all(axis=-1)
    out = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(np.uint8)
    out[bad] = BAD
    return out


def colormap8(values: np.ndarray, lo: float, hi: float, lut8: np.ndarray) -> np.ndarray:
    """2-D ``values`` through a uint8 colormap ``lut8`` (N, 3) on [lo, hi]; NaN -> ``BAD``."""
    a = np.asarray(values, np.float64)
    out = np.asarray(lut8, np.uint8)[lut_index(a, lo, hi, len(lut8))]
    out[~np.isfinite(a)] = BAD
    return out


def grey_rgb(plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A 2-D array as grey RGB in [0, 1] on the scale [lo, hi] (clipped; NaN stays NaN)."""
    g = unit_scale(plane, lo, hi)
    return np.repeat(g[..., None], 3, axis=-1)


def sheet_grid(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, cols) of a grid of ``n`` cells whose cols / rows is about ``aspect``: the
    fewest columns giving at most that ratio, then the fewest rows that hold ``n``."""
    if n < 0 or not aspect > 0:
        raise ValueError(f"sheet_grid: expected n >= 0 and aspect > 0, received {n}, {aspect}")
    if n == 0:
        return (0, 0)
    cols = max(1, min(n, round(math.sqrt(n * aspect))))
    return (math.ceil(n / cols), cols)


@dataclass(frozen=True)
class Zoom:
    """How a (h, w) array is drawn: block means of ``step`` x ``step``, then each value
    repeated ``up_y`` x ``up_x`` times."""

    step: int
    up_y: int
    up_x: int

    def size(self, h: int, w: int) -> tuple[int, int]:
        """The drawn (height, width) of an (h, w) array."""
        return (math.ceil(h / self.step) * self.up_y, math.ceil(w / self.step) * self.up_x)


def fit_zoom(h: int, w: int, box: int, min_px: int = 16) -> Zoom:
    """The zoom drawing an (h, w) array within about ``box`` pixels: small ones enlarged by the
    largest whole factor that fits, large ones reduced by whole blocks; a thin axis (a vector's
    one row) is stretched to at least ``min_px`` pixels."""
    side = max(h, w, 1)
    if side <= box:
        step, up = 1, max(1, box // side)
    else:
        step, up = math.ceil(side / box), 1
    hy, wx = math.ceil(h / step), math.ceil(w / step)
    up_y = max(up, math.ceil(min_px / max(hy, 1)))
    up_x = max(up, math.ceil(min_px / max(wx, 1)))
    return Zoom(step, up_y, up_x)


def block_mean(a: np.ndarray, step: int) -> np.ndarray:
    """Means of ``step`` x ``step`` blocks over the first two axes of ``a`` (partial blocks at
    the edges averaged over what they hold; NaN where a block has no finite value)."""
    a = np.asarray(a, np.float64)
    if step == 1:
        return a
    h, w = a.shape[:2]
    hh, ww = math.ceil(h / step), math.ceil(w / step)
    pad = [(0, hh * step - h), (0, ww * step - w)] + [(0, 0)] * (a.ndim - 2)
    finite = np.isfinite(a)
    total = np.pad(np.where(finite, a, 0.0), pad).reshape(hh, step, ww, step, *a.shape[2:])
    count = np.pad(finite.astype(np.float64), pad).reshape(hh, step, ww, step, *a.shape[2:])
    with np.errstate(invalid="ignore", divide="ignore"):
        return total.sum(axis=(1, 3)) / count.sum(axis=(1, 3))


def enlarge(a: np.ndarray, zoom: Zoom) -> np.ndarray:
    """``a`` (h', w'[, 3]), already reduced by ``block_mean``, with each value repeated
    ``zoom.up_y`` x ``zoom.up_x`` times."""
    return np.repeat(np.repeat(a, zoom.up_y, axis=0), zoom.up_x, axis=1)
