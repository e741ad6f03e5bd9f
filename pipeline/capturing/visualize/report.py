"""What ``visualize`` reports: the ``VisualizeReport`` and its one summary line."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import NotInRunError, StoreError
from ...store import open_run
from .jobs import Job

log = logging.getLogger(__name__)


@dataclass
class VisualizeReport:
    """What ``visualize`` did: the run, its layers and epochs visualized, the channel
    visualizations they hold, those computed now and those found done, the pictures drawn, the
    time taken, and the mean activation the visualizations reached against the mean best
    activation over the run's patterns (NaN without an analysis)."""

    run: Path
    layers: list[str] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    channels: int = 0
    computed: int = 0
    reused: int = 0
    attributed: bool = False
    pictures: list[Path] = field(default_factory=list)
    dead: dict[str, set[int]] = field(default_factory=dict)  # layer -> channels without gradient
    seconds: float = 0.0
    activation: float = math.nan
    dataset_activation: float = math.nan

    def summary(self) -> str:
        """One line: ``visualized 3 layer(s) at 1 epoch(s): 192 channel(s) (192 computed,
        0 done before) in 41.2 s; mean activation reached 12.3 vs best over the
        patterns 4.56``."""
        at = "" if self.epochs == [None] else f" at {len(self.epochs)} epoch(s)"
        text = (
            f"visualized {len(self.layers)} layer(s){at}: {self.channels} channel(s) "
            f"({self.computed} computed, {self.reused} done before) in "
            f"{self.seconds:.1f} s"
        )
        if math.isfinite(self.activation):
            text += f"; mean activation reached {self.activation:.4g}"
            if math.isfinite(self.dataset_activation):
                text += f" vs best over the patterns {self.dataset_activation:.4g}"
        return text


def measure(run_path: Path, jobs: Sequence[Job], report: VisualizeReport) -> None:
    """The report's mean activation reached and mean best over the patterns."""
    run = open_run(run_path)
    reached, best = [], []
    for job in jobs:
        try:
            got = run.features_of(job.layer, job.epoch)
        except (NotInRunError, StoreError) as exc:
            log.debug("cannot read back the features of %s: %s", job.layer, exc)
            continue
        keep = np.isin(got["channels"], job.channels)
        reached.append(np.asarray(got["activation"], np.float64)[keep])
        best.append(np.asarray(got["dataset_activation"], np.float64)[keep])
    if reached:
        values = np.concatenate(reached)
        report.activation = float(np.mean(values)) if values.size else math.nan
        data = np.concatenate(best)
        finite = data[np.isfinite(data)]
        report.dataset_activation = float(finite.mean()) if finite.size else math.nan
