"""The class of each pattern: from a ``.npy`` file (``labels=``, ``--labels``), or the labels a training run recorded
for its watched patterns (``run.json`` ``watch.labels``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..store import Run


def resolve(run: Run, path: str | Path | None) -> tuple[np.ndarray | None, list[str]]:
    """``(labels, class_names)``: one integer per pattern of the run, or ``(None, [])``."""
    if path:
        return load(path, run.num_patterns), []
    watch = run.info.get("watch") or {}
    labels = watch.get("labels") or []
    if labels and len(labels) == run.num_patterns:
        return np.asarray(labels, np.int64), [str(n) for n in watch.get("class_names") or []]
    return None, []


def load(path: str | Path, count: int) -> np.ndarray:
    """Integer labels from a ``.npy`` file: one per pattern (at least ``count``)."""
    p = Path(path)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"labels: file not found: {p}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels: expected a .npy file of integers, {p} is not ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] > 1:  # one-hot rows
        arr = np.asarray(arr).argmax(axis=1)
    arr = np.asarray(arr).reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else np.asarray(arr)
    if arr.ndim != 1 or (arr.dtype.kind not in "biu" and not _integral(arr)):
        raise ConfigError(
            f"labels: expected one integer per pattern (shape ({count},)), received shape "
            f"{arr.shape} of {arr.dtype} in {p}"
        )
    if arr.shape[0] < count:
        raise ConfigError(
            f"labels: expected {count} labels (one per pattern of the run), received "
            f"{arr.shape[0]} in {p}"
        )
    return arr[:count].astype(np.int64)


def _integral(arr: np.ndarray) -> bool:
    return (
        arr.dtype.kind == "f"
        and bool(np.all(np.isfinite(arr)))
        and bool(np.all(arr == np.round(arr)))
    )
