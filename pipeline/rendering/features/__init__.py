"""The pictures of ``passage visualize``, drawn from what it stored (no TensorFlow): per
visualized (layer, epoch) the sheet of every channel's visualization
(``RUN/features/<layer dir>[.epoch-E].png``) and, when top patterns were attributed, the
top-patterns picture with the attribution overlays (``.top.png``). ``display`` holds the pure
rules of how an image, a pattern and an attribution are shown (shared with the viewer)."""

from __future__ import annotations

from . import display, geometry, sheets
from .display import attribution_mask, display_image, sheet_grid
from .pictures import draw_features
from .sheets import draw_sheet, figure_sheet
from .top import draw_top, figure_top

__all__ = [
    "attribution_mask",
    "display",
    "display_image",
    "draw_features",
    "draw_sheet",
    "draw_top",
    "figure_sheet",
    "figure_top",
    "geometry",
    "sheet_grid",
    "sheets",
]
