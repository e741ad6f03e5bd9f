"""What the suites share: configs for a capture into a scratch folder, a timed capture that
cleans up after itself, and the environment of a child ``python -m pipeline``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.capturing.identity import layer_records
from pipeline.capturing.stream import capture, capture_model
from pipeline.config import CaptureConfig, Config, SelectConfig
from pipeline.store import QueuedWriter, RunWriter

from .baselines import BareForward
from .measure import folder_bytes, seconds

ROOT = Path(__file__).resolve().parent.parent
SEED_SELECT = SelectConfig(rule="seed", min_size=(15, 15))
CONV_SELECT = SelectConfig(rule="all", classes=("Conv2D",))


def capture_config(
    out: Path,
    patterns: int,
    batch_size: int,
    model: str = "builtin:seed",
    select: SelectConfig = SEED_SELECT,
    fmt: str = "npy",
    dtype: str = "float32",
) -> Config:
    return Config(
        capture=CaptureConfig(
            model=model,
            patterns=f"random:{patterns}",
            out=str(out),
            format=fmt,
            dtype=dtype,
            batch_size=batch_size,
            architecture=False,
            overwrite=True,
        ),
        select=select,
    )


class TimedCapture:
    """A capture into a fresh folder; returns seconds, then deletes it.

    With ``model`` (a baseline's model, built once) the capture is ``capture_model`` on it, as
    the Python API captures a model in memory: like the baselines, the timing then leaves out
    building the model but holds everything else (tracing, pattern source, run files, the
    stream). Without, it is ``capture``, building the model from its spec each time."""

    def __init__(self, config: Config, model: Any = None) -> None:
        self.config = config
        self.model = model
        self.out = Path(config.capture.out)
        self.bytes = 0

    def __call__(self) -> float:
        shutil.rmtree(self.out, ignore_errors=True)
        # Start every timed run with the previous runs' dirty pages written back: on this VM the
        # same 2.9 GB write took 0.6 s or 5.8 s depending on the writeback still in flight.
        os.sync()
        if self.model is None:
            elapsed = seconds(lambda: capture(self.config, quiet=True))
        else:
            elapsed = seconds(lambda: capture_model(self.model, self.config, quiet=True))
        self.bytes = folder_bytes(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        return elapsed


class StoreAlone:
    """The store side of a capture without the model: the same files (layers, batches,
    shapes, writer threads and queue) written from one batch of real outputs made once. How
    fast this machine's disk takes a capture's output, side by side with the forward pass."""

    def __init__(self, config: Config, bare: BareForward, out: Path) -> None:
        c = config.capture
        self.out = out
        self.count, self.batch_size, self.queue_size = (
            bare.source.count,
            bare.batch_size,
            c.queue_size,
        )
        size = min(self.batch_size, self.count)
        outputs = bare.probe(bare.source.batch(0, size))
        self.names = bare.layer_names
        self.outputs = [np.ascontiguousarray(o) for o in outputs]
        self.info = {"fingerprint": "store-alone", "layers": layer_records(bare.selected)}
        self.bytes = 0

    def __call__(self) -> float:
        shutil.rmtree(self.out, ignore_errors=True)
        os.sync()  # as TimedCapture
        elapsed = seconds(self._write)
        self.bytes = folder_bytes(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        return elapsed

    def _write(self) -> None:
        with RunWriter(self.out, self.info) as writer:
            queued = QueuedWriter(writer, maxsize=self.queue_size)
            try:
                for first in range(0, self.count, self.batch_size):
                    size = min(self.batch_size, self.count - first)
                    queued.submit(
                        [
                            (n, None, first, o[:size])
                            for n, o in zip(self.names, self.outputs, strict=True)
                        ]
                    )
            finally:
                queued.close()


def fit_to_disk(n: int, bytes_per_pattern: float, tmp: Path) -> int:
    """``n``, or fewer patterns when ``n`` of them would fill more than 80 % of the free disk."""
    free = shutil.disk_usage(tmp).free * 0.8
    return n if n * bytes_per_pattern < free else max(1, int(free / bytes_per_pattern))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def passage_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", *args]
