"""Analyze: what each layer does over many patterns, from the store alone (no TensorFlow).

Mergeable partial results per (layer, epoch, piece of patterns) and CKA between layers, runs
and epochs (``partial.Partial``: add, merge, state, result), written to ``RUN/analysis/`` as
arrays; ``pipeline.rendering.analysis`` draws the summary pictures from them.
"""

from .report import AnalysisReport
from .runner import analyze

__all__ = ["AnalysisReport", "analyze"]
