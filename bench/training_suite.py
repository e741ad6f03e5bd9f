"""Training figure: fit time with ``CaptureCallback`` / without, on ``configs/training.toml``.
The measurement lives in ``bench/training_overhead.py``; this reports "not available" where
the config is absent."""

from __future__ import annotations

import logging

from .common import ROOT
from .figures import Figure, unavailable
from .sizes import Sizes
from .training_overhead import measure_callback_overhead

log = logging.getLogger(__name__)

NAME = "training time with CaptureCallback / without"
TARGET = ("<=", 1.10)
CONFIG = ROOT / "configs" / "training.toml"


def training_figures(sizes: Sizes) -> list[Figure]:
    if not sizes.training:
        return [unavailable(NAME, "s", TARGET, "skipped at this size")]
    if not CONFIG.is_file():
        return [unavailable(NAME, "s", TARGET, f"{CONFIG.relative_to(ROOT)} is missing")]
    try:
        result = measure_callback_overhead(str(CONFIG), repeats=sizes.training_repeats)
    except Exception as exc:  # noqa: BLE001 - reported as a row, the other figures still count
        log.exception("training overhead measurement failed")
        return [unavailable(NAME, "s", TARGET, f"failed: {exc}")]
    return [
        Figure(
            NAME,
            result["without_median_s"],
            result["with_median_s"],
            "s",
            result["ratio"],
            TARGET,
            f"{CONFIG.relative_to(ROOT)}, medians of {result['repeats']} alternating pairs; "
            f"CPU time ratio {result['cpu_ratio']:.2f}",
        )
    ]
