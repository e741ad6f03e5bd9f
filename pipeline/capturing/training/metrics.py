"""The lines the training callback appends to ``metrics.jsonl`` (pure: no Keras, no files).

One line per epoch: ``{"epoch": k, "step": s, "time": seconds, ...logs}`` (the logs Keras
passes: loss, metrics, validation values); in step unit also one line per batch record:
``{"scope": "batch", "step": s, "epoch": epochs completed, "loss": ...}``. ``metrics.jsonl``
gives the step of each epoch end, so render can say "step 96 (epoch 3)".
"""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A log value as JSON: numbers as float, arrays/tensors as float or list."""
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything unconvertible is stored as text
        return str(value)
    if arr.dtype.kind in "biuf":
        return float(arr) if arr.ndim == 0 else arr.tolist()
    return str(value)


def epoch_line(
    epoch: int, step: int | None, seconds: float, logs: dict[str, Any] | None
) -> dict[str, Any]:
    """The line of epoch ``epoch`` (epochs completed), ``seconds`` after the fit began."""
    line: dict[str, Any] = {"epoch": epoch, "step": step, "time": round(seconds, 4)}
    line.update({k: plain(v) for k, v in (logs or {}).items()})
    return line


def batch_line(step: int, epoch: int, logs: dict[str, Any] | None) -> dict[str, Any]:
    """The line of a batch record at ``step``, ``epoch`` epochs completed."""
    line: dict[str, Any] = {"scope": "batch", "step": step, "epoch": epoch}
    line.update({k: plain(v) for k, v in (logs or {}).items()})
    return line
