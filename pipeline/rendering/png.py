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


def save_png(path: Path, rgba: np.ndarray, dpi: float) -> None:
    """Write an (H, W, 4) uint8 buffer as PNG; RGB when every pixel is opaque."""
    import matplotlib

    opaque = bool(rgba[..., 3].min() == 255)
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]) if opaque else rgba)
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    )
    image.save(
        path,
        format="png",
        compress_level=1,
        compress_type=Z_RLE,
        dpi=(dpi, dpi),
        pnginfo=info,
    )
