"""Passage: see how a pattern passes through a Keras model, layer by layer.

Capture (needs TensorFlow) and render (does not) meet only at the store on disk. Importing this
package does not import TensorFlow: the capture-side names load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ConfigError,
    DamagedDataError,
    DiskFullError,
    DistributedError,
    ModelLoadError,
    NeuralDataError,
    NotInRunError,
    PassageError,
    PatternError,
    RenderError,
    RunLockedError,
    SelectionError,
    ShapeError,
    SpecError,
    StoreError,
)
from .store import Run, open_run  # noqa: E402

_LAZY = {
    "analyze": ("pipeline.analysis", "analyze"),
    "CaptureCallback": ("pipeline.capturing.training.callback", "CaptureCallback"),
    "capture": ("pipeline.capturing.stream", "capture"),
    "compare": ("pipeline.compare", "compare"),
    "capture_model": ("pipeline.capturing.stream", "capture_model"),
    "plot_pattern_process": ("pipeline.article", "plot_pattern_process"),
    "render": ("pipeline.rendering", "render"),
    "visualize": ("pipeline.capturing.visualize.runner", "visualize"),
}

__all__ = [
    "CaptureCallback",
    "ConfigError",
    "DamagedDataError",
    "DiskFullError",
    "DistributedError",
    "ModelLoadError",
    "NeuralDataError",
    "NotInRunError",
    "PassageError",
    "PatternError",
    "RenderError",
    "Run",
    "RunLockedError",
    "SelectionError",
    "ShapeError",
    "SpecError",
    "StoreError",
    "__version__",
    "analyze",
    "capture",
    "capture_model",
    "compare",
    "open_run",
    "plot_pattern_process",
    "render",
    "visualize",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
