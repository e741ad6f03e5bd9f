"""``compare(run, ...)``: a run's layers against neural data, per layer and per epoch.

The run's lock is held for the whole comparison (a run still being captured is refused). The
model side is each layer's Gram matrix over the conditions (``model_grams``: streamed from the
store, in parallel over layers, kept so that a killed comparison resumes); the rest (RDMs,
comparisons, noise ceilings, bootstrap intervals, encoding models) works on N x N matrices in
memory. Each target is written to ``RUN/compare/NAME/`` (``store.compare_files``), its
``comparison.npz`` last; regions also to ``RUN/compare/regions.npz``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..analysis import labels as labelmod
from ..analysis.pieces import complete_prefix, uniform
from ..analysis.runner import resolve_epochs
from ..errors import ConfigError
from ..executors import LOCAL, WorkerPool
from ..store import Run, open_run
from ..store import compare_files as files
from ..store.grams import DISTANCES, gram_kind, rdm_from_gram
from ..store.lock import RunLock
from .comparators import METHODS
from .model_grams import ensure_grams, load_gram
from .neural import read_conditions
from .regions import regions_arrays
from .scoring import condensed, encoding_arrays, rsa_arrays
from .targets import NeuralData, Target, load_target, plan_targets

log = logging.getLogger(__name__)

ENCODING_KIND = "shifted"  # the ridge's kernel: rows minus one reference vector


@dataclass
class CompareReport:
    """What ``compare`` wrote: one folder per target, the regions file, pictures, problems."""

    run: Path
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    regions: dict[str, np.ndarray] | None = None
    pictures: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conditions: int = 0


def compare(
    run: str | Path | Run,
    rdms: Sequence[str] = (),
    responses: Sequence[str] = (),
    name: str | None = None,
    distance: str = "correlation",
    method: str = "tau-a",
    epoch: int | str | None = "all",
    bootstrap: int = 1000,
    seed: int = 0,
    conditions: str | Path | None = None,
    labels: str | Path | None = None,
    workers: int = 0,
    pictures: bool = True,
    quiet: bool = False,
    pool: WorkerPool | None = None,
) -> CompareReport:
    """Compare ``run`` with reference RDMs (``rdms``: files, ``NAME=file`` for a region) and
    responses (``responses``), writing ``RUN/compare/NAME/`` (docs/compare.md)."""
    if distance not in DISTANCES:
        raise ConfigError(f"distance: expected one of {DISTANCES}, received {distance!r}")
    if method not in METHODS:
        raise ConfigError(f"method: expected one of {METHODS}, received {method!r}")
    if bootstrap < 0:
        raise ConfigError(f"bootstrap: expected >= 0 samples (0: none), received {bootstrap}")
    targets = plan_targets(rdms, responses, name)
    for target in targets:
        files.check_name(target.name)
    run = run if isinstance(run, Run) else open_run(run)
    lock = RunLock(run.path)
    lock.acquire()
    try:
        run = open_run(run.path)  # the manifest as it is now that no capture can append
        removed = files.remove_temporaries(run.path)
        if removed:
            log.info("removed %d file(s) a killed comparison left half-written", removed)
        return _compare(
            run,
            targets,
            distance,
            method,
            epoch,
            bootstrap,
            seed,
            conditions,
            labels,
            workers,
            pictures,
            quiet,
            pool or LOCAL,
        )
    finally:
        lock.release()


def _conditions(run: Run, path: str | Path | None, epochs: Sequence[int | None]) -> np.ndarray:
    """The run pattern of each condition, all complete at every epoch compared."""
    complete = min(complete_prefix(run, ep) for ep in epochs)
    if path:
        chosen = read_conditions(path, run.num_patterns)
        if chosen.size and int(chosen.max()) >= complete:
            raise ConfigError(
                f"conditions: pattern {int(chosen.max())} is not captured yet (the run holds "
                f"patterns 0..{complete - 1} in every layer); finish the capture, or choose "
                "captured patterns"
            )
        return chosen
    if complete < run.num_patterns:
        log.warning(
            "run %s is incomplete: comparing its complete prefix, patterns 0..%d of %d",
            run.path,
            complete - 1,
            run.num_patterns,
        )
    return np.arange(complete, dtype=np.int64)


def _compare(
    run: Run,
    targets: list[Target],
    distance: str,
    method: str,
    epoch: int | str | None,
    samples: int,
    seed: int,
    conditions_path: str | Path | None,
    labels_path: str | Path | None,
    workers: int,
    pictures: bool,
    quiet: bool,
    pool: WorkerPool,
) -> CompareReport:
    report = CompareReport(run.path)
    epochs = resolve_epochs(run, epoch)
    conditions = _conditions(run, conditions_path, epochs)
    n = report.conditions = int(conditions.size)
    where = (
        f"--conditions {conditions_path}"
        if conditions_path
        else f"run {run.path} (its complete patterns)"
    )
    data = {t.name: load_target(t, n, where) for t in targets}  # checked before any long work
    if n < 3:
        raise ConfigError(
            f"conditions: an RDM needs at least 3 conditions, received {n}; capture more patterns"
        )
    labels = _labels(run, labels_path, conditions)
    layers = [name for name in run.layers if all(uniform(run, name, ep) for ep in epochs)]
    for name in sorted(set(run.layers) - set(layers)):
        log.warning("layer %r is left out: its outputs change shape from file to file", name)
    kinds = [gram_kind(distance)]
    if any(d.responses is not None for d in data.values()) and ENCODING_KIND not in kinds:
        kinds.append(ENCODING_KIND)
    patterns = np.unique(conditions)
    sources = None if patterns.size == run.num_patterns else patterns  # None: every pattern
    damaged = ensure_grams(run, layers, epochs, kinds, sources, workers, pool, quiet)
    report.problems += [f"layer {name!r} left out: {why}" for name, why in damaged.items()]
    layers = [name for name in layers if name not in damaged]
    if not layers:
        raise ConfigError(
            f"run {run.path}: no layer can be compared (every layer is left out: damaged "
            "data files or outputs of changing shape); run `passage verify` on it"
        )
    order = np.searchsorted(patterns, conditions)  # Gram rows -> condition order

    def gram(layer: str, ep: int | None, kind: str) -> np.ndarray:
        g = load_gram(run, layer, ep, kind, sources)
        return g[np.ix_(order, order)]

    # features per pattern, as stored (run.json may hold a free size, None)
    features = {name: math.prod(run.chunks(name, epochs[0])[0].shape) for name in layers}
    models = np.stack(
        [
            np.stack(
                [
                    condensed(rdm_from_gram(gram(name, ep, kinds[0]), distance, features[name]))
                    for name in layers
                ]
            )
            for ep in epochs
        ]
    )
    for target in targets:
        arrays = _target_arrays(
            target,
            data[target.name],
            models,
            layers,
            epochs,
            method,
            samples,
            seed,
            gram,
            quiet,
        )
        arrays["method"] = np.array(method)
        arrays["distance"] = np.array(distance)
        arrays["references"] = np.array(data[target.name].names)
        info = {
            "name": target.name,
            "sources": target.sources,
            "conditions": conditions.tolist(),
            "labels": None if labels is None else labels.tolist(),
            "bootstrap": samples,
            "seed": seed,
            "region": target.region,
            "kind": _kind(target),
        }
        files.write_comparison(run.path, target.name, arrays, data[target.name].rdms, info)
        report.comparisons[target.name] = files.read_comparison(run.path, target.name)
    if targets[0].region is not None:
        report.regions = regions_arrays(
            {t.region or t.name: report.comparisons[t.name] for t in targets}
        )
        files.write_regions(run.path, report.regions)
    if pictures:  # drawing is render's: compare only computes and stores arrays
        from ..rendering.compare import draw_comparison, draw_regions

        for target in targets:
            report.pictures += draw_comparison(run, target.name, quiet=quiet)
        if report.regions is not None:
            drawn = draw_regions(run)
            if drawn is not None:
                report.pictures.append(drawn)
    return report


def _kind(target: Target) -> str:
    if target.rdm_files and target.response_files:
        return "both"
    return "rsa" if target.rdm_files else "encoding"


def _labels(run: Run, path: str | Path | None, conditions: np.ndarray) -> np.ndarray | None:
    """One integer per condition: ``--labels`` (one per condition), or the run's own labels
    (a training run's watched patterns) taken at the conditions."""
    if path:
        return labelmod.load(path, conditions.size)
    own, _ = labelmod.resolve(run, None)
    return None if own is None else own[conditions]


def _target_arrays(
    target: Target,
    data: NeuralData,
    models: np.ndarray,
    layers: list[str],
    epochs: list[int | None],
    method: str,
    samples: int,
    seed: int,
    gram: Callable[[str, int | None, str], np.ndarray],
    quiet: bool,
) -> dict[str, Any]:
    batch = epochs == [None]
    refs = condensed(data.rdms)
    steps = samples * len(epochs) + (len(layers) * len(epochs) if data.responses is not None else 0)
    with tqdm(total=steps, desc=f"compare {target.name}", disable=quiet, leave=False) as bar:
        arrays = rsa_arrays(
            models, refs, layers, method, samples, seed, None if batch else epochs, bar.update
        )
        if data.responses is not None:
            keys = [[(name, ep) for name in layers] for ep in epochs]
            arrays.update(
                encoding_arrays(
                    lambda key: gram(key[0], key[1], ENCODING_KIND),
                    keys,
                    data.responses,
                    data.repeats,
                    seed,
                    batch,
                    bar.update,
                )
            )
    return arrays
