"""Training mode of ``passage capture``: a config with a ``[train]`` section trains the model on
its dataset and records the watched patterns with ``CaptureCallback``.

The model is compiled from ``[train]`` (optimizer, learning rate, loss, metrics) unless it comes
compiled (a ``.keras`` file saved after ``compile``). ``backup.EpochBackup`` keeps the weights
of the last finished epoch in ``RUN/train-backup/`` (written atomically), so running the
same command after a crash, or with more ``[train] epochs``, continues the training where it
stopped and appends to the same run; a complete run is left as it is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...config import Config, TrainConfig
from ...errors import ConfigError, PassageError, SpecError, StoreError
from ...store import MANIFEST, RUN_JSON, Run, open_run
from ...store.manifest import complete_records, read_manifest
from ...store.runinfo import read_run_json
from ..diagram import ensure_architecture
from ..framework import keras_and_tf
from ..inputs import input_names, input_shapes
from ..models import load_model
from ..patterns import load_patterns
from . import backup
from .callback import CaptureCallback
from .datasets import Dataset, load_dataset, watch_indices

keras, _tf = keras_and_tf()
log = logging.getLogger(__name__)

BACKUP_DIR = "train-backup"


def build_optimizer(t: TrainConfig) -> Any:
    """The ``[train]`` optimizer, with ``learning_rate`` when it is > 0."""
    try:
        optimizer = keras.optimizers.get(t.optimizer)
    except ValueError as exc:
        raise ConfigError(
            f"[train] optimizer: expected a Keras optimizer name such as 'adam' or 'sgd', "
            f"received {t.optimizer!r}"
        ) from exc
    if t.learning_rate > 0:
        optimizer.learning_rate = t.learning_rate
    return optimizer


def compile_if_needed(model: Any, t: TrainConfig) -> None:
    if getattr(model, "compiled", False) and getattr(model, "optimizer", None) is not None:
        log.info("model %s comes compiled; [train] optimizer/loss are not used", model.name)
        return
    try:
        model.compile(optimizer=build_optimizer(t), loss=t.loss, metrics=list(t.metrics))
    except ValueError as exc:
        raise ConfigError(f"[train]: cannot compile the model: {exc}") from exc


def watched_patterns(
    cfg: Config, data: Dataset, shapes: Any, names: Any = None
) -> tuple[Any, dict[str, Any]]:
    """The watched patterns (one array, or one per model input) and their description for
    run.json. ``[train] watch`` is read as ``[capture] patterns`` would be: input names,
    ``[capture] inputs`` and ``limit`` apply."""
    t, c = cfg.train, cfg.capture
    assert t is not None
    if t.watch:
        source = load_patterns(t.watch, shapes, names, c.inputs, limit=c.limit)
        xs = source.batch(0, source.count)
        return (xs[0] if len(xs) == 1 else xs), {"spec": t.watch}
    idx = watch_indices(data.y, t.watch_per_class)
    labels = [int(v) for v in data.y[idx]] if data.y.ndim == 1 else []
    return data.x[idx], {
        "spec": f"{t.dataset} samples {idx}",
        "indices": idx,
        "labels": labels,
        "class_names": list(data.class_names),
    }


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs with the latest loss and accuracy."""

    def __init__(self, epochs: int, initial: int, quiet: bool) -> None:
        super().__init__()
        self.bar = tqdm(
            total=epochs, initial=initial, unit="epoch", desc="train", disable=quiet, leave=True
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.bar.set_postfix(
            {k: f"{float(v):.4f}" for k, v in logs.items() if "loss" in k or "acc" in k}
        )
        self.bar.update(1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.bar.close()


def _recorded_keys(out: Path, fingerprint: str) -> set[int] | None:
    """Keys recorded whole (every layer, every watched pattern) in ``out`` when it holds this
    run, else None."""
    info = read_run_json(out / RUN_JSON, lenient=True)  # None or {} when there is no such run
    if not info or info.get("fingerprint") != fingerprint:
        return None
    layers = [rec["name"] for rec in info.get("layers", [])]
    entries = read_manifest(out / MANIFEST).entries
    return set(complete_records(entries, layers, int(info.get("num_patterns") or 0)))


@dataclass
class Prepared:
    """A training as ``[train]`` describes it: model, dataset, watched patterns."""

    model: Any
    data: Dataset
    watch: Any
    watch_info: dict[str, Any]
    steps_per_epoch: int


def prepare(cfg: Config) -> Prepared:
    """Seed, build the model, load the dataset and pick the watched patterns (not compiled)."""
    t = cfg.train
    if t is None:
        raise ConfigError("training mode: expected a [train] section in the config")
    keras.utils.set_random_seed(t.seed)
    model = load_model(cfg.capture.model, unsafe=cfg.capture.unsafe)
    shapes = input_shapes(model)
    data = load_dataset(t.dataset, shapes, t.x_key, t.y_key)
    watch, watch_info = watched_patterns(cfg, data, shapes, input_names(model))
    return Prepared(model, data, watch, watch_info, math.ceil(data.count / t.batch_size))


def capture_callback(cfg: Config, prep: Prepared, out: Path | None = None) -> CaptureCallback:
    """The CaptureCallback ``cfg`` asks for, writing into ``out`` (default ``[capture] out``)."""
    t, c = cfg.train, cfg.capture
    assert t is not None
    return CaptureCallback(
        Path(out or c.out),
        prep.watch,
        select=cfg.select,
        every=t.every,
        every_batches=t.every_batches,
        fmt=c.format,
        dtype=c.dtype,
        batch_size=c.batch_size,
        batch_mb=c.batch_mb,
        overwrite=c.overwrite,
        durable=c.fsync,
        direct_io=c.direct_io,
        info={
            "model": c.model,
            "patterns": prep.watch_info["spec"],
            "watch": prep.watch_info,
            "dataset": {
                "spec": t.dataset,
                "count": prep.data.count,
                "steps_per_epoch": prep.steps_per_epoch,
            },
            "config": cfg.to_dict(),
        },
        fingerprint_extra={"model": c.model, "dataset": t.dataset, "seed": t.seed},
        keep_weights=t.keep_weights,
    )


def train_and_capture(cfg: Config, quiet: bool = False) -> Run:
    """Train ``cfg``'s model on ``[train] dataset`` and record the watched patterns."""
    prep = prepare(cfg)
    t, c = cfg.train, cfg.capture
    assert t is not None
    model, data, steps_per_epoch = prep.model, prep.data, prep.steps_per_epoch
    out = Path(c.out)
    callback = capture_callback(cfg, prep, out)
    info = callback.plan(model)
    done = _recorded_keys(out, info["fingerprint"]) if not c.overwrite else None
    wanted = set(callback.expected_keys(t.epochs, steps_per_epoch))
    if done is not None and wanted <= done:
        log.info("%s is complete already (%d records); nothing to train", out, len(done))
        return open_run(out)
    if done and not t.resume:
        raise StoreError(
            f"{out} holds an unfinished training ({len(done)} record(s)) and [train] resume is "
            "false, so it cannot be continued; expected resume = true, or pass --overwrite to "
            "train again from the start"
        )
    if c.overwrite:
        backup.clear(out / BACKUP_DIR)
    compile_if_needed(model, t)
    callbacks: list[Any] = [callback]
    initial = 0
    if t.resume:
        # Kept after a complete training too, so that raising [train] epochs continues it.
        saver = backup.EpochBackup(out / BACKUP_DIR, restore=bool(done))
        initial = saver.initial_epoch
        callbacks.append(saver)  # after the capture callback: record epoch k, then back it up
    bar = EpochBar(t.epochs, initial, quiet)
    callbacks.append(bar)
    try:
        history = model.fit(
            data.x,
            data.y,
            epochs=t.epochs,
            initial_epoch=initial,
            batch_size=t.batch_size,
            callbacks=callbacks,
            verbose=0,
        )
    except PassageError:
        raise
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"training failed: {first}") from exc
    finally:
        callback.close()
        bar.bar.close()
    if c.architecture:
        ensure_architecture(model, out)
    final = {k: v[-1] for k, v in history.history.items() if v}
    log.info(
        "trained %d epoch(s) on %s: %s; %d record(s) of %d pattern(s) x %d layer(s) in %s",
        len(history.epoch),
        t.dataset,
        ", ".join(f"{k} {float(v):.4f}" for k, v in final.items()),
        callback.records,
        callback.source.count if callback.source else 0,
        len(callback.selected),
        out,
    )
    return open_run(out)
