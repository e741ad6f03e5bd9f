"""What the suites share: configs for a capture into a scratch folder, a timed capture that
cleans up after itself, and the environment of a child ``python -m pipeline``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pipeline.batch import capture
from pipeline.config import CaptureConfig, Config, SelectConfig

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
    """``pipeline.batch.capture`` into a fresh folder; returns seconds, then deletes it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.out = Path(config.capture.out)
        self.bytes = 0

    def __call__(self) -> float:
        shutil.rmtree(self.out, ignore_errors=True)
        # Start every timed run with the previous runs' dirty pages written back: on this VM the
        # same 2.9 GB write took 0.6 s or 5.8 s depending on the writeback still in flight.
        os.sync()
        elapsed = seconds(lambda: capture(self.config, quiet=True))
        self.bytes = folder_bytes(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        return elapsed


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def passage_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", *args]
