"""Pure colour-index math of the raster page painter (no matplotlib, no I/O).

A raster page is a palette ("P" mode) image: entries ``0..levels-1`` hold the colormap
sampled at ``levels`` points, entry ``levels`` the colour of NaN/inf pixels, the rest the
greys and colours of the static page (titles, ticks, frames). Image pixels are placed with
maps read back from probe draws: each probe colour encodes a row or column index.
"""

from __future__ import annotations

import numpy as np

PROBE_BLUE = (64, 192)
MAX_PROBE = 65536  # indices the probe colours can encode (red + 256 * green)  # the blue channel of the two probe encodings (never 0 or 255)


def level_indices(image: np.ndarray, vmin: float, vmax: float, levels: int, bad: int) -> np.ndarray:
    """``image`` as uint8 colormap levels: ``vmin`` -> 0, ``vmax`` -> ``levels - 1``, values
    beyond clipped to the ends (matplotlib's default under/over colours), NaN/inf -> ``bad``."""
    a = np.asarray(image, dtype=np.float32)
    span = float(vmax) - float(vmin)
    scale = levels / span if span > 0 else 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # huge values, inf: clipped or bad
        v = np.subtract(a, np.float32(vmin))
        v *= np.float32(scale)
        # one pass finds whether any value is NaN or inf (a huge sum only costs the slow path)
        finite = bool(np.isfinite(np.add.reduce(v, axis=None)))
        np.clip(v, np.float32(0), np.float32(levels - 1), out=v)
    if finite:
        return v.astype(np.uint8)
    nonfinite = ~np.isfinite(a)
    v[nonfinite] = 0
    out = v.astype(np.uint8)
    out[nonfinite] = bad
    return out


def rgb_bytes(picture: np.ndarray, bad: tuple[int, int, int]) -> np.ndarray:
    """The uint8 colours of an RGB ``picture`` (float values in [0, 1], any leading shape,
    3 last) as matplotlib's ``imshow`` puts them on the page: clipped to [0, 1], times 255,
    truncated; a pixel with a NaN/inf channel -> ``bad`` (imshow leaves it transparent)."""
    a = np.asarray(picture, np.float64)  # imshow resamples an RGB picture in float64
    with np.errstate(invalid="ignore"):
        out = (np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    nonfinite = ~np.isfinite(a).all(axis=-1)
    if nonfinite.any():
        out[nonfinite] = bad
    return out


def expand(index: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) uint8 palette indices as a writable (H, W, 3) uint8 RGB array, each pixel in its
    entry's colour (Pillow's conversion: measured about 3x faster than ``palette[index]``)."""
    from PIL import Image

    h, w = index.shape
    image = Image.frombuffer("P", (w, h), np.ascontiguousarray(index), "raw", "P", 0, 1)
    image.putpalette(np.ascontiguousarray(palette, np.uint8).tobytes())
    return np.array(image.convert("RGB"))


def put_colors(flat_rgb: np.ndarray, pos: np.ndarray, colors: np.ndarray) -> None:
    """``flat_rgb[pos] = colors`` for (n, 3) uint8 arrays, channel by channel (numpy copies
    single bytes faster than 3-byte rows)."""
    for k in range(3):
        flat_rgb[:, k][pos] = colors[:, k]


def probe_colors(n: int, variant: int) -> np.ndarray:
    """(n, 3) uint8 colours that encode the indices 0..n-1 (n <= 65536); ``variant`` 0 or 1
    gives two unrelated encodings, so a pixel blended with anything else decodes to
    different indices (or a wrong blue) in the two and is recognised as not pure."""
    k = np.arange(n)
    lo, hi = k % 256, k // 256
    if variant:
        lo, hi = 255 - lo, 255 - hi
    blue = np.full(n, PROBE_BLUE[variant])
    return np.stack([lo, hi, blue], axis=1).astype(np.uint8)


def decode_probe(rgb: np.ndarray, variant: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, valid) of the pixels of an RGB array drawn with ``probe_colors(.., variant)``."""
    lo = rgb[..., 0].astype(np.int64)
    hi = rgb[..., 1].astype(np.int64)
    if variant:
        lo, hi = 255 - lo, 255 - hi
    return lo + 256 * hi, rgb[..., 2] == PROBE_BLUE[variant]


def pixel_maps(
    rows_a: np.ndarray, rows_b: np.ndarray, cols_a: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From three probe renderings of one image box (rows in encoding 0 and 1, columns in
    encoding 0), the image pixels of the box: (flat box positions, source rows, source cols).

    A box pixel counts as image only where both row encodings agree and all indices lie in
    ``shape``; the rest (frame, anti-aliased edges, outside) keeps the static background.
    """
    ra, va = decode_probe(rows_a, 0)
    rb, vb = decode_probe(rows_b, 1)
    ca, vc = decode_probe(cols_a, 0)
    ok = va & vb & vc & (ra == rb) & (ra < shape[0]) & (ca < shape[1])
    flat = np.flatnonzero(ok)
    return flat, ra.ravel()[flat], ca.ravel()[flat]


def fit_palette(colors: np.ndarray, counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A palette of at most ``size`` entries for the (n, 3) uint8 ``colors`` of a static page
    (``counts`` pixels each) and each colour's entry.

    All colours when they fit; else the most frequent half, completed with an even grey ramp
    (titles and ticks are black anti-aliased on white), each colour mapped to its nearest."""
    colors = np.asarray(colors, np.uint8).reshape(-1, 3)
    if len(colors) <= size:
        return colors.copy(), np.arange(len(colors))
    common = colors[np.argsort(-np.asarray(counts), kind="stable")[: size // 2]]
    ramp = np.linspace(0, 255, size - len(common)).round().astype(np.uint8)
    palette = np.concatenate([common, np.repeat(ramp[:, None], 3, axis=1)])
    dist = ((colors[:, None, :].astype(np.int32) - palette[None, :, :]) ** 2).sum(axis=2)
    return palette, dist.argmin(axis=1)


def grey_map(palette: np.ndarray, offset: int) -> np.ndarray:
    """(256,) uint8: for each grey level, ``offset`` + the index of the nearest palette entry
    (how a freshly drawn black-on-white title is put into the palette)."""
    grey = np.arange(256)[:, None, None]
    dist = ((grey - palette[None, :, :].astype(np.int32)) ** 2).sum(axis=2)
    return (dist.argmin(axis=1) + offset).astype(np.uint8)
