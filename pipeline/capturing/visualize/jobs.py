"""The (layer, epoch) jobs of one ``visualize`` call, settled before anything is written:
the epochs, each layer's channels, batch size, attributed top patterns and settings record,
and the refusal of settings that differ from a stored record."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError, NotInRunError, SpecError, StoreError
from ...store import Run
from ...store.feature_files import layer_settings
from .choices import (
    DEFAULT_CHANNELS,
    default_top,
    parse_channels,
    parse_epochs,
    settings_diff,
)
from .optimize import batch_channels
from .reload import weight_files
from .space import Space

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One (layer, epoch) to visualize."""

    layer: str
    epoch: int | None
    channels: list[int]
    batch: int
    top: int
    settings: dict[str, Any]
    stored: dict[str, Any] | None
    top_index: np.ndarray | None = None  # (channels of the layer, K) when attributed


def resolve_epochs(run: Run, epochs: str | list[int] | None) -> list[int | None]:
    if not run.is_training:
        if epochs not in (None, "", "all", "last"):
            raise ConfigError(
                f"epochs: run {run.path} is a batch run, without epochs; received {epochs!r}"
            )
        return [None]
    kept = list(weight_files(run))
    chosen = parse_epochs(epochs, kept)
    if epochs in (None, ""):
        log.info(
            "epochs %s of the %d whose weights were kept (--epochs all for every one)",
            ", ".join(map(str, chosen)),
            len(kept),
        )
    return list(chosen)


def plan_jobs(
    run: Run,
    names: list[str],
    channels: str | list[int] | None,
    space: Space,
    batch: int | None,
    top: int | None,
    common: dict[str, Any],
    digests: dict[int | None, str],
    epochs: list[int | None],
) -> list[Job]:
    jobs: list[Job] = []
    no_analysis: list[str] = []
    for name in names:
        shape = run.layer(name).shape
        count = shape[-1] if shape else 1
        if count is None:
            raise SpecError(
                f"layer {name!r} has a free channel count (shape {tuple(shape)}); expected a "
                "fixed last axis: leave it out with --layers"
            )
        chosen = parse_channels(channels, int(count))
        if channels in (None, "") and count > DEFAULT_CHANNELS:
            log.info(
                "layer %s: the first %d of its %d channels (--channels all for every one)",
                name,
                DEFAULT_CHANNELS,
                count,
            )
        size = batch or batch_channels(space, shape)
        for ep in epochs:
            top_index = None
            try:
                top_index = np.asarray(run.analysis(name, ep)["top_index"])
            except NotInRunError:
                no_analysis.append(name)
            k = default_top(None if top_index is None else int(top_index.shape[1]), top)
            if top is None:  # never more slots than the run has patterns
                k = min(k, run.num_patterns)
            settings = {
                **common,
                "top": k,
                "channels": chosen,
                "batch": size,
                "weights": digests[ep],
            }
            stored = layer_settings(run.path, name, ep)
            jobs.append(Job(name, ep, chosen, size, k, settings, stored, top_index))
    if no_analysis and top != 0:
        log.warning(
            "no analysis of %s in %s: attribution of the top patterns is skipped; run "
            "`passage analyze %s` first",
            ", ".join(sorted(set(no_analysis))),
            run.path,
            run.path,
        )
    return jobs


def refuse_changed(run: Run, jobs: Sequence[Job], overwrite: bool) -> None:
    if overwrite:
        return
    for job in jobs:
        if job.stored is None:
            continue
        diff = settings_diff(job.stored, job.settings)
        if diff:
            at = "" if job.epoch is None else f" at epoch {job.epoch}"
            raise StoreError(
                f"layer {job.layer!r}{at} of {run.path} was visualized with other settings "
                f"({'; '.join(diff)}); pass --overwrite to visualize it again with these, or "
                "ask for the same settings to resume"
            )
