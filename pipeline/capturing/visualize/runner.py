"""``visualize(run, ...)``: feature visualizations (and attributions of the top patterns) of a
run's layers, written into ``RUN/features/`` (``pipeline.store.feature_files``).

The run's lock is held throughout. Each (layer, epoch) is settled first: its channels, batch
size and settings; a stored record with other settings is refused unless ``overwrite`` (which
drops it and starts again). Then per batch of consecutive channels: one ``Visualizer.run``,
its image and activation files, and when an analysis gave top patterns one
``Attributor.run`` and its four files. A batch whose files the manifest lists is skipped, so a
killed run resumes where it was and ends with the files an uninterrupted one writes.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...errors import ConfigError, SpecError
from ...store import Run, open_run
from ...store.feature_files import (
    FeatureWriter,
    drop_features,
    remove_temporaries,
    sheet_path,
    write_settings,
)
from ...store.lock import RunLock
from ..identity import weights_digest
from .attribution import Attributor
from .choices import (
    SETTINGS_VERSION,
    canonical,
    channel_batches,
    compact_channels,
    match_layers,
)
from .jobs import Job, plan_jobs, refuse_changed, resolve_epochs
from .optimize import ATTEMPTS, Settings, Visualizer
from .reload import (
    RunPatterns,
    load_run_model,
    preprocess_function,
    recorded_preprocess,
    run_layers,
)
from .report import VisualizeReport, measure
from .space import Space, choose_space

log = logging.getLogger(__name__)

IMAGE_GROUP = ("image", "activation")
ATTRIBUTION_GROUP = ("attribution", "top_input", "top_index", "top_value")


def visualize(
    run: str | Path | Run,
    *,
    layers: list[str] | tuple[str, ...] | None = None,
    channels: str | list[int] | None = None,
    steps: int = 512,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    epochs: str | list[int] | None = None,
    top: int | None = None,
    samples: int = 32,
    noise: float = 0.15,
    batch: int | None = None,
    overwrite: bool = False,
    pictures: bool = True,
    unsafe: bool = False,
    model: Any = None,
    quiet: bool = False,
    lr: float = 0.05,
    patterns: Any = None,
) -> VisualizeReport:
    """Visualize the channels of ``run``'s layers into ``RUN/features/`` (module docstring).

    ``layers``: name globs (None: every layer of the run); ``channels``: ``"0-15,20"``,
    ``"all"`` or a list (None: the first 64 of each layer); ``epochs`` (training runs):
    ``"all"``, ``"last"``, ``"0,5,20"`` or a list (None: up to 4 evenly spaced epochs whose
    weights were kept); ``top``: top patterns attributed per channel (None: the analysis' K,
    at most 9; 0: none); ``batch``: channels optimized together (None: by memory);
    ``model``: the model itself, for a run captured from an in-memory model (a batch run's
    weights are checked against the run's; a training run's epochs are loaded into it and
    its own weights put back at the end); ``patterns``: the in-memory arrays the run was
    captured from when it kept no inputs (checked against the run's digest)."""
    _check_arguments(steps, samples, noise, batch, top, lr)
    run = run if isinstance(run, Run) else open_run(run)  # a clear error before any lock file
    shapes = run.info.get("inputs") or []
    if len(shapes) != 1:
        names = run.info.get("input_names") or []
        raise SpecError(
            f"visualize optimizes one model input; the model of run {run.path} has "
            f"{len(shapes)} {names}: multi-input models are not supported"
        )
    names = match_layers(run.layers, layers)
    lock = RunLock(run.path)
    lock.acquire()
    try:
        removed = remove_temporaries(run.path)
        if removed:
            log.info("removed %d temporary file(s) of an interrupted visualize", removed)
        run = open_run(run.path)  # the manifest as it is now that no writer can append
        original = _state(model) if model is not None and run.is_training else None
        try:
            return _visualize(
                run,
                names,
                channels,
                Settings(steps=steps, seed=seed, lr=lr),
                size,
                epochs,
                top,
                samples,
                noise,
                batch,
                overwrite,
                pictures,
                unsafe,
                model,
                patterns,
                quiet,
            )
        finally:
            if original is not None:
                for variable, value in zip(_variables(model), original, strict=True):
                    variable.assign(value)
    finally:
        lock.release()


def _variables(model: Any) -> list[Any]:
    """The model's weights and its optimizer's state: what loading an epoch's file changes."""
    optimizer = getattr(model, "optimizer", None)
    return list(model.weights) + list(getattr(optimizer, "variables", None) or [])


def _state(model: Any) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in _variables(model)]


def _check_arguments(
    steps: int, samples: int, noise: float, batch: int | None, top: int | None, lr: float
) -> None:
    if steps < 1 or samples < 1 or (batch is not None and batch < 1):
        raise ConfigError(
            f"steps, samples and batch: expected >= 1, received steps={steps} "
            f"samples={samples} batch={batch}"
        )
    if top is not None and top < 0:
        raise ConfigError(f"top: expected K >= 0 patterns per channel (0: none), received {top}")
    if not (math.isfinite(noise) and noise >= 0) or not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"noise and lr: expected noise >= 0, lr > 0, received {noise}, {lr}")


def _visualize(
    run: Run,
    names: list[str],
    channels: str | list[int] | None,
    settings: Settings,
    size: tuple[int, int] | None,
    epochs: str | list[int] | None,
    top: int | None,
    samples: int,
    noise: float,
    batch: int | None,
    overwrite: bool,
    pictures: bool,
    unsafe: bool,
    model: Any,
    arrays: Any,
    quiet: bool,
) -> VisualizeReport:
    start = time.monotonic()
    report = VisualizeReport(run.path, layers=list(names))
    report.epochs = resolve_epochs(run, epochs)
    digests: dict[int | None, str] = {}
    for ep in report.epochs:  # every epoch's weights reloaded before anything is written
        model = load_run_model(run, ep, unsafe=unsafe, model=model)
        digests[ep] = weights_digest(model)
    patterns = RunPatterns(run, arrays)
    low, high = patterns.range()
    space = choose_space(run.info["inputs"][0], low, high, preprocess_function(run), _size(size))
    common = {
        "steps": settings.steps,
        "seed": settings.seed,
        "lr": settings.lr,
        "size": list(space.shape[:2]) if size is not None else None,
        "space": space.kind,
        "low": float(space.low),
        "high": float(space.high),
        "preprocess": recorded_preprocess(run) or None,
        "transforms": bool(settings.transforms and space.kind != "input"),
        "samples": samples,
        "noise": noise,
        "version": SETTINGS_VERSION,
    }
    jobs = plan_jobs(run, names, channels, space, batch, top, common, digests, report.epochs)
    refuse_changed(run, jobs, overwrite)
    if overwrite:  # all before the writer appends: a drop rewrites the manifest file
        for job in jobs:
            if job.stored is not None:
                removed = drop_features(run.path, job.layer, job.epoch)
                at = "" if job.epoch is None else f" at epoch {job.epoch}"
                log.info("--overwrite: removed %d file(s) of layer %s%s", removed, job.layer, at)
                job.stored = None
    report.attributed = any(job.top for job in jobs)
    todo = sum(len(job.channels) for job in jobs)
    writer = FeatureWriter(run.path)
    bar = tqdm(total=todo, unit="channel", desc="visualize", disable=quiet, leave=False)
    tools: dict[str, LayerTools] = {}  # per layer, traced once: every epoch loads its weights
    try:  # into the same model, whose variables the traced functions read
        for ep in report.epochs:
            if run.is_training:  # a batch run's one model was loaded and checked above
                model = load_run_model(run, ep, unsafe=unsafe, model=model)
            if not tools:
                infos = run_layers(model, run, names)
                tools = {
                    name: LayerTools(model, infos[name], space, settings, (samples, noise))
                    for name in names
                }
            for job in (j for j in jobs if j.epoch == ep):
                computed = _run_job(run, job, tools[job.layer], patterns, writer, bar, report)
                if pictures and (computed or not _sheet(run, job.layer, ep).is_file()):
                    report.pictures += _draw(run.path, job.layer, ep)
    finally:
        bar.close()
        writer.close()
    if any(report.dead.values()):
        log.warning(
            "units without gradient at any of %d random starts (silent on every input tried; "
            "their images stay at the grey start): %s",
            ATTEMPTS,
            "; ".join(
                f"{name} {compact_channels(sorted(dead))}"
                for name, dead in report.dead.items()
                if dead
            ),
        )
    measure(run.path, jobs, report)
    report.seconds = time.monotonic() - start
    return report


def _size(size: Any) -> tuple[int, int] | None:
    if size is None or (isinstance(size, (tuple, list)) and len(size) == 0):
        return None
    return (int(size[0]), int(size[1]))


class LayerTools:
    """A layer's ``Visualizer`` and ``Attributor`` over ``model``, each built (traced) when
    first needed and then reused for every epoch of the call."""

    def __init__(
        self,
        model: Any,
        info: Any,
        space: Space,
        settings: Settings,
        smoothing: tuple[int, float],
    ) -> None:
        self.model, self.info, self.space = model, info, space
        self.settings, self.smoothing = settings, smoothing
        self._visualizer: Visualizer | None = None
        self._attributor: Attributor | None = None

    @property
    def visualizer(self) -> Visualizer:
        if self._visualizer is None:
            self._visualizer = Visualizer(self.model, self.info, self.space, self.settings)
        return self._visualizer

    @property
    def attributor(self) -> Attributor:
        if self._attributor is None:
            samples, noise = self.smoothing
            self._attributor = Attributor(
                self.model, self.info, self.space, samples, noise, seed=self.settings.seed
            )
        return self._attributor


def _run_job(
    run: Run,
    job: Job,
    tools: LayerTools,
    patterns: RunPatterns,
    writer: FeatureWriter,
    bar: Any,
    report: VisualizeReport,
) -> bool:
    """Visualize (and attribute) what ``job`` lacks; returns whether anything was computed."""
    stored = (job.stored or {}).get("channels") or []
    job.settings["channels"] = sorted(set(stored) | set(job.channels))
    if job.stored is None or canonical(job.settings) != canonical(job.stored):
        write_settings(run.path, job.layer, job.epoch, job.settings)
    covered = writer.covered(job.layer, job.epoch)
    # what the files lack, cut into batches of consecutive channels: files are complete batches
    # written in order, so a resumed call cuts the rest as an uninterrupted one did
    images = channel_batches(_lacking(job.channels, covered, IMAGE_GROUP), job.batch)
    attrib = (
        channel_batches(_lacking(job.channels, covered, ATTRIBUTION_GROUP), job.batch)
        if job.top
        else []
    )
    batches = sorted({tuple(b) for b in images + attrib})
    report.channels += len(job.channels)
    lacking = {c for b in batches for c in b}
    report.computed += len(lacking)
    report.reused += len(job.channels) - len(lacking)
    if images or attrib:
        log.debug(
            "layer %s%s: channels %s in %d batch(es) of up to %d",
            job.layer,
            "" if job.epoch is None else f" at epoch {job.epoch}",
            compact_channels(job.channels),
            len(batches),
            job.batch,
        )
    shown = 0  # channels the bar has counted
    for group in images:
        pictures, reached = tools.visualizer.run(group)
        report.dead.setdefault(job.layer, set()).update(tools.visualizer.dead)
        writer.write(job.layer, job.epoch, group[0], {"image": pictures, "activation": reached})
        bar.update(len(group))
        shown += len(group)
    for group in attrib:
        arrays = _attribution(tools.attributor, patterns, job, group, tools.space)
        writer.write(job.layer, job.epoch, group[0], arrays)
        if not images:  # attribution only: it is this call's work on those channels
            bar.update(len(group))
            shown += len(group)
    bar.update(len(job.channels) - shown)
    return bool(images or attrib)


def _lacking(
    channels: list[int], covered: dict[str, set[int]], kinds: tuple[str, ...]
) -> list[int]:
    """The ``channels`` some file of ``kinds`` does not hold yet."""
    return [c for c in channels if not all(c in covered[k] for k in kinds)]


def _sheet(run: Run, layer: str, epoch: int | None) -> Path:
    return sheet_path(run.path, run.layer(layer).dir, epoch)


def _attribution(
    attributor: Attributor, patterns: RunPatterns, job: Job, group: list[int], space: Space
) -> dict[str, np.ndarray]:
    """The four attribution files of the channels ``group``: SmoothGrad maps of their top
    patterns, those inputs, their indices (-1: an empty slot) and activations (NaN there)."""
    assert job.top_index is not None
    index = job.top_index[group, : job.top].astype(np.int64)
    valid = index >= 0
    wanted = sorted({int(i) for i in index[valid]})
    found = patterns.inputs(wanted)
    shape = found.shape[1:] if wanted else tuple(space.shape)
    inputs = np.zeros((*index.shape, *shape), np.float32)
    row = {p: i for i, p in enumerate(wanted)}
    for c, k in zip(*np.nonzero(valid), strict=True):
        inputs[c, k] = found[row[int(index[c, k])]]
    maps, values = attributor.run(group, inputs)
    maps = np.where(valid.reshape(*valid.shape, *([1] * len(shape))), maps, 0.0)
    values = np.where(valid, values, np.nan)
    return {
        "attribution": maps.astype(np.float32),
        "top_input": inputs,
        "top_index": index,
        "top_value": values.astype(np.float32),
    }


def _draw(run_path: Path, layer: str, epoch: int | None) -> list[Path]:
    from ...rendering.features import draw_features

    return draw_features(open_run(run_path), layer, epoch)
