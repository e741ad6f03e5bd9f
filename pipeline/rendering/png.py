"""Fast PNG of a drawn Agg canvas: same pixels as ``savefig``, cheaper encoding.

Pillow's PNG encoder spends most of its time filtering and deflating; an opaque page is saved
as RGB (a quarter less data, the same picture) with zlib's run-length strategy at level 1,
which measured about twice as fast as ``savefig``'s RGBA at ``compress_level=1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

Z_RLE = 3  # zlib's run-length strategy (Pillow's ``compress_type``)


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
    8-bit palette PNG: one byte per pixel instead of three, so filtering and deflating cost a
    third. zlib's default strategy at level 1: on these pages it measured as fast as the
    run-length strategy and half the size (35 KB instead of 66 KB for a seed 2x2 page)."""
    image = Image.fromarray(np.ascontiguousarray(index, np.uint8), mode="P")
    image.putpalette(np.ascontiguousarray(palette, np.uint8).tobytes())
    _save(image, path, dpi)
