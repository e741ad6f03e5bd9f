"""Fast PNG of a drawn Agg canvas: same pixels as ``savefig``, cheaper encoding.

Pillow's PNG encoder spends most of its time filtering and deflating; an opaque page is saved
as RGB (a quarter less data, the same picture) with zlib's run-length strategy at level 1,
which measured about twice as fast as ``savefig``'s RGBA at ``compress_level=1``.

Palette pages (the raster painter's) are encoded here: rows deflated at level 1 by zlib-ng
(about 3x zlib's speed; zlib where the package is missing), except rows that are mostly noise
(most pixels differ from both their left and upper neighbour: a random-weights CNN's maps),
which deflate would spend milliseconds on to save a few percent; those go in stored blocks.
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


def _chunk(kind: bytes, *data: bytes | memoryview) -> list[bytes | memoryview]:
    crc = _deflate.crc32(kind)
    size = 0
    for part in data:
        crc = _deflate.crc32(part, crc)
        size += len(part)
    return [struct.pack(">I", size) + kind, *data, struct.pack(">I", crc & 0xFFFFFFFF)]


def noisy_rows(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For the given row numbers of a uint8 image, whether more than ``NOISY`` of the row's
    pixels differ from both their left and their upper neighbour."""
    row = index[rows, 1:]
    fresh = (row != index[rows, :-1]) & (row != index[np.maximum(rows - 1, 0), 1:])
    return fresh.mean(axis=1) > NOISY


def zlib_stream(raw: np.ndarray) -> list[bytes | memoryview]:
    """The parts of a zlib stream of the C-contiguous (rows, bytes) uint8 array ``raw`` (PNG
    scanlines): bands of ``BAND`` rows deflated at level 1, or stored when their middle row
    is noisy (``noisy_rows``)."""
    n = raw.shape[0]
    starts = np.arange(0, n, BAND)
    stored = noisy_rows(raw[:, 1:], np.minimum(starts + BAND // 2, n - 1)).tolist()
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
    import matplotlib

    h, w = index.shape
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 0  # filter type None on every row
    raw[:, 1:] = index
    ppm = round(dpi / 0.0254)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    return [
        b"\x89PNG\r\n\x1a\n",
        *_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
        *_chunk(b"PLTE", np.ascontiguousarray(palette, np.uint8).tobytes()),
        *_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
        *_chunk(b"tEXt", b"Software\x00" + software.encode("latin-1")),
        *_chunk(b"IDAT", *zlib_stream(raw)),
        *_chunk(b"IEND"),
    ]
