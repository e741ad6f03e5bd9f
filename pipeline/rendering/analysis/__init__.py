"""The analysis pictures, drawn from analysis results alone (numpy arrays; no TensorFlow):
a summary sheet and a top-patterns sheet per layer, CKA heatmaps (layers x layers, across
runs, over epochs) and the class x channel heatmap. Each is written as a PNG atomically and
leaves no matplotlib figure open. Analyze computes and stores the arrays, then calls
``draw_all`` (``sheets.py``) to draw a run's pictures from its ``analysis/`` files."""

from __future__ import annotations

from .heatmaps import draw_cka, draw_classes, draw_cross_cka, draw_epoch_cka
from .sheets import draw_all
from .summary import draw_summary
from .top import draw_top

__all__ = [
    "draw_all",
    "draw_cka",
    "draw_classes",
    "draw_cross_cka",
    "draw_epoch_cka",
    "draw_summary",
    "draw_top",
]
