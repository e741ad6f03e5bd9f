"""Pure numpy for the Unit view: how a stored image becomes the bytes the page draws, the
thumbnails of a layer page, each pattern's channel activation and its histogram.

The byte rule is the page's (``assets/unit.js``), in float64 as JavaScript computes it:

- ``"image"`` / ``"pixels"`` spaces, (H, W, C) with C = 1 or 3: per colour channel
  ``floor((v - low) / (high - low) * 255 + 0.5)`` clipped to 0..255, gray replicated;
- ``"input"`` space: the image as a 2-D array (``display.as_plane``), then the colormap index
  ``floor((v - lo) / (hi - lo) * 255 + 0.5)`` over the finite [lo, hi] of those values.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..rendering.features.display import as_plane

RGB_SPACES = ("image", "pixels")
HIST_BINS = 30


def is_rgb(space: str, shape: tuple[int, ...]) -> bool:
    """Whether an image of ``shape`` in ``space`` is drawn as colours (else with a colormap)."""
    return space in RGB_SPACES and len(shape) == 3 and shape[-1] in (1, 3)


def finite_range(values: np.ndarray) -> tuple[float, float] | tuple[None, None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if v.size else (None, None)


def scale_bytes(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """``floor((v - lo) / (hi - lo) * 255 + 0.5)`` clipped to 0..255 as uint8 (0 for NaN or
    an empty range): JavaScript's ``Math.round`` on the same float64 operations."""
    v = np.asarray(values, dtype=np.float64)
    if lo is None or hi is None or not hi > lo:
        return np.zeros(v.shape, np.uint8)
    with np.errstate(invalid="ignore"):
        idx = np.floor((v - lo) / (hi - lo) * 255 + 0.5)
    idx = np.where(np.isfinite(idx), idx, 0)
    return np.clip(idx, 0, 255).astype(np.uint8)


def display_codes(
    image: np.ndarray, space: str, low: float, high: float
) -> tuple[np.ndarray, float | None, float | None]:
    """``(codes, lo, hi)``: (H, W, 3) RGB bytes for image spaces (lo, hi = low, high), else
    (H, W) colormap indices over the displayed values' own finite range."""
    x = np.asarray(image)
    if is_rgb(space, x.shape):
        codes = scale_bytes(x, low, high)
        if codes.shape[-1] == 1:
            codes = np.repeat(codes, 3, axis=-1)
        return codes, float(low), float(high)
    shown = as_plane(x)
    lo, hi = finite_range(shown)
    return scale_bytes(shown, lo, hi), lo, hi


def block_mean(x: np.ndarray, longest: int) -> np.ndarray:
    """``x`` (H, W, ...) averaged over blocks of f x f pixels (the last blocks may be smaller),
    f the smallest factor bringing its longest side to at most ``longest``."""
    h, w = x.shape[:2]
    f = max(1, -(-max(h, w) // longest))
    if f == 1:
        return np.asarray(x, dtype=np.float64)
    rows, cols = np.arange(0, h, f), np.arange(0, w, f)
    sums = np.add.reduceat(np.add.reduceat(np.asarray(x, np.float64), rows, axis=0), cols, axis=1)
    nr = np.diff(np.append(rows, h)).astype(np.float64)
    nc = np.diff(np.append(cols, w)).astype(np.float64)
    counts = np.outer(nr, nc).reshape(len(rows), len(cols), *([1] * (x.ndim - 2)))
    return sums / counts


def thumbnail_codes(
    image: np.ndarray, space: str, low: float, high: float, longest: int
) -> np.ndarray:
    """A layer page's thumbnail: the display of ``image`` block-averaged to at most
    ``longest`` pixels a side, as bytes (RGB for image spaces, colormap indices over the full
    image's displayed range otherwise)."""
    x = np.asarray(image, dtype=np.float64)
    if is_rgb(space, x.shape):
        codes = scale_bytes(block_mean(x, longest), low, high)
        return np.repeat(codes, 3, axis=-1) if codes.shape[-1] == 1 else codes
    shown = as_plane(x)
    lo, hi = finite_range(shown)
    return scale_bytes(block_mean(shown, longest), lo, hi)


def channel_activations(chunk: np.ndarray) -> np.ndarray:
    """(n, *shape) layer outputs -> (n, C) float64: each channel's mean over every other
    per-pattern axis, non-finite values left out (NaN when none is finite), as analyze."""
    x = np.asarray(chunk, dtype=np.float64)
    n = x.shape[0]
    per = x.reshape(n, -1, x.shape[-1]) if x.ndim > 1 else x.reshape(n, 1, 1)
    per = np.where(np.isfinite(per), per, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per, axis=1)


def histogram(values: np.ndarray, bins: int = HIST_BINS) -> dict[str, object]:
    """``{"edges", "counts", "patterns", "left_out"}`` of the finite ``values`` (numpy's
    ``histogram`` over their range; no edges when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return {"edges": [], "counts": [], "patterns": 0, "left_out": int(v.size)}
    counts, edges = np.histogram(finite, bins=bins)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(np.int64).tolist(),
        "patterns": int(finite.size),
        "left_out": int(v.size - finite.size),
    }
