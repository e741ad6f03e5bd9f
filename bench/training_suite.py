"""Training figure: fit time with ``CaptureCallback`` / without, on ``configs/training.toml``.
The measurement lives in ``bench/training_overhead.py`` (the training-callback work); this
reports "not available" where that module or the config is absent."""

from __future__ import annotations

import logging
from typing import Any

from .common import ROOT
from .figures import Figure, unavailable
from .sizes import Sizes

log = logging.getLogger(__name__)

NAME = "training time with CaptureCallback / without"
TARGET = ("<=", 1.10)
CONFIG = ROOT / "configs" / "training.toml"


def _first(result: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = result.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def training_figures(sizes: Sizes) -> list[Figure]:
    if not sizes.training:
        return [unavailable(NAME, "s", TARGET, "skipped at this size")]
    try:
        from bench.training_overhead import measure_callback_overhead  # type: ignore[import-not-found]
    except ImportError:
        return [unavailable(NAME, "s", TARGET, "bench/training_overhead.py is not in this branch")]
    if not CONFIG.is_file():
        return [unavailable(NAME, "s", TARGET, f"{CONFIG.relative_to(ROOT)} is missing")]
    try:
        result = measure_callback_overhead(str(CONFIG), repeats=sizes.training_repeats)
    except Exception as exc:  # noqa: BLE001 - reported as a row, the other figures still count
        log.exception("training overhead measurement failed")
        return [unavailable(NAME, "s", TARGET, f"failed: {exc}")]
    ratio = _first(result, "ratio", "overhead_ratio")
    return [
        Figure(
            NAME,
            _first(result, "without_s", "baseline_s", "without", "seconds_without"),
            _first(result, "with_s", "ours_s", "with", "seconds_with"),
            "s",
            ratio,
            TARGET,
            f"{CONFIG.relative_to(ROOT)}, repeats={sizes.training_repeats}",
        )
    ]
