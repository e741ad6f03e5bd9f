"""Figures of the analysis pictures and how they reach the disk.

Each picture is a ``matplotlib.figure.Figure`` on its own Agg canvas (never pyplot's global
state, so nothing is left open), drawn once, encoded as an RGB PNG and written under a
temporary name, then renamed: a reader never sees half a picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...store.atomic import atomic_write_bytes
from ..png import rgb_png_parts

DPI = 100.0


def new_figure(width: float, height: float, dpi: float = DPI, layout: str | None = None) -> Figure:
    """A white figure of ``width`` x ``height`` inches with its own Agg canvas (``layout``:
    matplotlib's layout engine, 'constrained' to fit long labels)."""
    fig = Figure(figsize=(width, height), dpi=dpi, facecolor="white", layout=layout)
    FigureCanvasAgg(fig)
    return fig


def write_rgb(path: Path, rgb: np.ndarray, dpi: float = DPI) -> None:
    """Write an (H, W, 3) uint8 picture to ``path`` as PNG, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, b"".join(bytes(p) for p in rgb_png_parts(rgb, dpi)))


def save_figure(fig: Figure, path: Path | str) -> Path:
    """Draw ``fig``, write it to ``path`` as PNG (atomically) and release its artists."""
    path = Path(path)
    try:
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
        write_rgb(path, np.ascontiguousarray(rgba[..., :3]), fig.dpi)
    finally:
        fig.clear()
    return path
