"""Fast PNG of a drawn Agg canvas: same pixels as ``savefig``, cheaper encoding.

Pillow's PNG encoder spends most of its time filtering and deflating; an opaque page is saved
as RGB (a quarter less data, the same picture) with zlib's run-length strategy at level 1,
which measured about twice as fast as ``savefig``'s RGBA at ``compress_level=1``.

The raster painter's pages are encoded here: palette pages, and RGB pages where a page
shows a colour picture. Rows are deflated at level 1 by zlib-ng (about 3x zlib's speed; zlib
where the package is missing), except rows that are mostly noise (most pixels differ from both
their left and upper neighbour: a random-weights CNN's maps), which deflate would spend
milliseconds on to save a few percent; those go in stored blocks.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

try:  # the same package the store's CRC-32 uses
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _deflate = zlib  # type: ignore[assignment]

Z_RLE = 3  # zlib's run-length strategy (Pillow's ``compress_type``)
BAND = 16  # rows judged together: deflated or stored
NOISY = 0.3  # a band is stored when more than this share of a row's pixels is noise-like
STORED_MAX = 65535  # bytes in one stored deflate block


def _save(image: Image.Image, path: Path, dpi: float, **zlib: int) -> None:
    import matplotlib

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    )
    image.save(path, format="png", compress_level=1, dpi=(dpi, dpi), pnginfo=info, **zlib)


def save_png(path: Path, rgba: np.ndarray, dpi: float) -> None:
    """Write an (H, W, 4) uint8 buffer as PNG; RGB when every pixel is opaque."""
    opaque = bool(rgba[..., 3].min() == 255)
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]) if opaque else rgba)
    _save(image, path, dpi, compress_type=Z_RLE)


def save_indexed_png(path: Path, index: np.ndarray, palette: np.ndarray, dpi: float) -> None:
    """Write an (H, W) uint8 palette-index array with its (n, 3) uint8 ``palette`` as an
    8-bit palette PNG (``indexed_png_parts``): one byte per pixel instead of three."""
    with open(path, "wb") as f:
        f.writelines(indexed_png_parts(index, palette, dpi))


def save_rgb_png(path: Path, rgb: np.ndarray, dpi: float) -> None:
    """Write an (H, W, 3) uint8 array as an 8-bit RGB PNG (``rgb_png_parts``)."""
    with open(path, "wb") as f:
        f.writelines(rgb_png_parts(rgb, dpi))


def _chunk(kind: bytes, *data: bytes | memoryview) -> list[bytes | memoryview]:
    crc = _deflate.crc32(kind)
    size = 0
    for part in data:
        crc = _deflate.crc32(part, crc)
        size += len(part)
    return [struct.pack(">I", size) + kind, *data, struct.pack(">I", crc & 0xFFFFFFFF)]


def noisy_rows(pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For the given row numbers of a uint8 image ((H, W) palette indices or (H, W, C)
    colours), whether more than ``NOISY`` of the row's pixels differ from both their left and
    their upper neighbour."""
    above = np.maximum(rows - 1, 0)
    if pixels.ndim == 3:  # each pixel's channels packed into one number, compared at once
        here, up = _packed(pixels[rows]), _packed(pixels[above])
    else:
        here, up = pixels[rows], pixels[above]
    row = here[:, 1:]
    fresh = (row != here[:, :-1]) & (row != up[:, 1:])
    return fresh.mean(axis=1) > NOISY


def _packed(pixels: np.ndarray) -> np.ndarray:
    """(..., C) uint8 colours (C <= 4) as one uint32 each."""
    out = pixels[..., 0].astype(np.uint32)
    for k in range(1, pixels.shape[-1]):
        out <<= 8
        out |= pixels[..., k]
    return out


def zlib_stream(raw: np.ndarray, channels: int = 1) -> list[bytes | memoryview]:
    """The parts of a zlib stream of the C-contiguous (rows, bytes) uint8 array ``raw`` (PNG
    scanlines: a filter byte, then ``channels`` bytes a pixel): bands of ``BAND`` rows
    deflated at level 1, or stored when their middle row is noisy (``noisy_rows``)."""
    n = raw.shape[0]
    starts = np.arange(0, n, BAND)
    pixels = raw[:, 1:].reshape(n, -1, channels) if channels > 1 else raw[:, 1:]
    stored = noisy_rows(pixels, np.minimum(starts + BAND // 2, n - 1)).tolist()
    parts: list[bytes | memoryview] = [b"\x78\x01"]
    start = 0
    while start < n:
        kind = stored[start // BAND]
        end = start
        while end < n and stored[end // BAND] == kind:
            end = min(end + BAND, n)
        data = memoryview(raw[start:end].reshape(-1))
        if kind:
            for at in range(0, len(data), STORED_MAX):
                piece = data[at : at + STORED_MAX]
                parts += [struct.pack("<BHH", 0, len(piece), 0xFFFF ^ len(piece)), piece]
        else:
            comp = _deflate.compressobj(1, zlib.DEFLATED, -15)
            parts += [comp.compress(data), comp.flush(zlib.Z_SYNC_FLUSH)]
        start = end
    parts.append(b"\x01\x00\x00\xff\xff")  # the final block: empty, stored
    parts.append(struct.pack(">I", _deflate.adler32(raw) & 0xFFFFFFFF))
    return parts


def indexed_png_parts(
    index: np.ndarray, palette: np.ndarray, dpi: float
) -> list[bytes | memoryview]:
    """The PNG file of an (H, W) uint8 palette-index array with its (n, 3) uint8 ``palette``,
    as a list of byte strings to write one after the other."""
    return _png_parts(index, palette, dpi)


def rgb_png_parts(rgb: np.ndarray, dpi: float) -> list[bytes | memoryview]:
    """The PNG file of an (H, W, 3) uint8 array, as a list of byte strings."""
    return _png_parts(rgb, None, dpi)


def _png_parts(
    pixels: np.ndarray, palette: np.ndarray | None, dpi: float
) -> list[bytes | memoryview]:
    """PNG of (H, W) palette indices with their ``palette``, or of (H, W, 3) colours."""
    import matplotlib

    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    raw = np.empty((h, w * channels + 1), np.uint8)
    raw[:, 0] = 0  # filter type None on every row
    raw[:, 1:] = pixels.reshape(h, w * channels)
    ppm = round(dpi / 0.0254)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    color_type = 3 if palette is not None else 2  # palette or truecolour
    plte = (
        []
        if palette is None
        else _chunk(b"PLTE", np.ascontiguousarray(palette, np.uint8).tobytes())
    )
    return [
        b"\x89PNG\r\n\x1a\n",
        *_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)),
        *plte,
        *_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
        *_chunk(b"tEXt", b"Software\x00" + software.encode("latin-1")),
        *_chunk(b"IDAT", *zlib_stream(raw, channels)),
        *_chunk(b"IEND"),
    ]
