"""What recording costs during training: ``fit`` with ``CaptureCallback`` versus the same ``fit``
without it, side by side in one process (same seed, model, data and epochs; fresh model each
time; runs alternate so that machine noise hits both alike).

    python -m bench.training_overhead [configs/training.toml] [repeats]

Target (issue 3): ratio = with / without <= 1.10 on configs/training.toml.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _fit_seconds(cfg: Any, with_callback: bool, out: Path | None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one ``fit``."""
    from pipeline.capturing.training.trainer import capture_callback, compile_if_needed, prepare

    t = cfg.train
    prep = prepare(cfg)
    compile_if_needed(prep.model, t)
    callbacks = [capture_callback(cfg, prep, out)] if with_callback else []
    start, cpu = time.perf_counter(), time.process_time()
    prep.model.fit(
        prep.data.x,
        prep.data.y,
        epochs=t.epochs,
        batch_size=t.batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    return time.perf_counter() - start, time.process_time() - cpu


def measure_callback_overhead(config_path: str, repeats: int = 1) -> dict[str, Any]:
    """Train the ``[train]`` config ``repeats`` times with and without the callback.

    Returns the wall times in seconds (``without_s``, ``with_s``: one per repeat), their
    medians, ``ratio`` (median with / median without), the same for the process CPU time
    (``without_cpu_s``, ``with_cpu_s``, ``cpu_ratio``: steadier on a shared machine), and the
    epochs.
    The run is written to a temporary folder that is removed afterwards.
    """
    from dataclasses import replace

    from pipeline import config as cfgmod

    cfg = cfgmod.load(config_path)
    if cfg.train is None:
        raise cfgmod.ConfigError(f"{config_path}: expected a [train] section")
    cfg = replace(cfg, capture=replace(cfg.capture, overwrite=True, architecture=False))
    without: list[tuple[float, float]] = []
    with_cb: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="passage-bench-") as tmp:
        for i in range(max(1, repeats)):
            out = Path(tmp) / f"run-{i}"
            # alternate which goes first, so that neither always runs on a warmer process
            if i % 2 == 0:
                without.append(_fit_seconds(cfg, False, None))
                with_cb.append(_fit_seconds(cfg, True, out))
            else:
                with_cb.append(_fit_seconds(cfg, True, out))
                without.append(_fit_seconds(cfg, False, None))
    a = statistics.median(w for w, _ in without)
    b = statistics.median(w for w, _ in with_cb)
    ca = statistics.median(c for _, c in without)
    cb = statistics.median(c for _, c in with_cb)
    return {
        "config": str(config_path),
        "epochs": cfg.train.epochs,
        "repeats": max(1, repeats),
        "without_s": [w for w, _ in without],
        "with_s": [w for w, _ in with_cb],
        "without_median_s": a,
        "with_median_s": b,
        "ratio": b / a,
        "without_cpu_s": [c for _, c in without],
        "with_cpu_s": [c for _, c in with_cb],
        "cpu_ratio": cb / ca,
    }


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "configs/training.toml"
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(json.dumps(measure_callback_overhead(path, reps), indent=2))
