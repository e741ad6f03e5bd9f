"""Analyze: what each layer does over many patterns, from the store alone (no TensorFlow).

Mergeable reductions per (layer, epoch, piece of patterns), CKA between layers, runs and epochs,
written to ``RUN/analysis/`` and drawn as summary pictures.
"""

from .report import AnalysisReport
from .runner import analyze

__all__ = ["AnalysisReport", "analyze"]
