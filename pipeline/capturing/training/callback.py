"""``CaptureCallback``: record watched patterns' layer outputs while a Keras model trains.

The probe (one multi-output model over the selected layers, sharing the model's weights) is
built once, at the first ``on_train_begin``, and reused for every record. A record is written
before training and after every ``every``-th epoch (or every ``every_batches`` steps), one
file per (record, layer, chunk of patterns). The callback does not touch training: no
recompiling, no new trainable state.

The parts live beside it: ``schedule`` (when to record, under which key), ``plan`` (the
watched patterns and layers, run.json and the fingerprint that lets a later ``fit`` resume the
run), ``recorder`` (the run held open, the files of each record) and ``metrics`` (the lines of
``metrics.jsonl``). This module adapts them to Keras' hooks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...config import SelectConfig
from ...errors import ConfigError
from ..framework import keras_and_tf, use_tensorflow_backend
from ..patterns import PatternSource
from ..probe import Probe
from ..selection import LayerInfo
from .metrics import batch_line, epoch_line
from .recorder import Recorder
from .run_plan import WatchPlan, WatchSpec, plan_watch
from .schedule import Schedule
from .weights import remove_temporaries, save_weights, weights_file

keras, _tf = keras_and_tf()


class CaptureCallback(keras.callbacks.Callback):
    """Record the layer outputs of ``patterns`` into the run ``run_dir`` during ``fit``.

    ``patterns``: one array (N, *input_shape), or a list with one array per model input.
    ``select`` picks the layers (the ``maps`` rule by default) unless ``layers`` names them.
    ``every``: record after every N-th epoch (and always after the last one ``fit`` runs);
    ``every_batches``: also every K optimizer steps (keys become steps, see ``schedule``).
    ``info`` adds entries to run.json (e.g. the dataset and labels of the watched patterns);
    ``fingerprint_extra`` adds parts to what identifies the run; ``durable`` fsyncs every file;
    ``direct_io=False`` writes every file through the page cache (``--buffered-io``);
    ``keep_weights`` saves the model's weights at every record to
    ``RUN/weights/epoch-EEEE.weights.h5`` (atomically; not part of the run's identity), so
    that ``passage visualize`` can reload the model as it was then.
    Use it as a context manager, or call ``close()`` when ``fit`` raised, to release the run's
    lock at once (a lock of a dead process is taken over anyway).
    """

    def __init__(
        self,
        run_dir: str | Path,
        patterns: Any,
        *,
        select: SelectConfig | None = None,
        layers: Sequence[str] | None = None,
        every: int = 1,
        every_batches: int = 0,
        fmt: str = "npy",
        dtype: str = "float32",
        batch_size: int = 256,
        batch_mb: int = 64,
        overwrite: bool = False,
        durable: bool = False,
        direct_io: bool = True,
        info: dict[str, Any] | None = None,
        fingerprint_extra: dict[str, Any] | None = None,
        keep_weights: bool = False,
    ) -> None:
        use_tensorflow_backend("CaptureCallback")  # the probe is TensorFlow's, whatever fit's
        super().__init__()
        if every < 1 or every_batches < 0 or batch_size < 0 or batch_mb < 1:
            raise ConfigError(
                "CaptureCallback: expected every >= 1, every_batches >= 0, batch_size >= 0 (0: "
                f"by batch_mb) and batch_mb >= 1, received every={every}, every_batches="
                f"{every_batches}, batch_size={batch_size}, batch_mb={batch_mb}"
            )
        self.run_dir = Path(run_dir)
        self.spec = WatchSpec(
            patterns,
            select or SelectConfig(),
            list(layers) if layers is not None else None,
            fmt,
            dtype,
            batch_size,
            batch_mb,
            dict(info or {}),
            dict(fingerprint_extra or {}),
        )
        self.schedule = Schedule(every, every_batches)
        self.overwrite = overwrite  # only for the first open: a second fit continues the run
        self.direct_io = direct_io
        self.keep_weights = keep_weights
        self.durable = durable
        self.recorder = Recorder(
            self.run_dir,
            self.schedule.unit,
            fmt=fmt,
            dtype=dtype,
            durable=durable,
            direct_io=direct_io,
        )
        self._plan: WatchPlan | None = None
        self._start = 0.0
        self._fit_checked = False  # whether this fit's first epoch was compared with the run
        if every_batches:
            # Only then a batch hook: Keras dispatches batch ends asynchronously (no per-step
            # sync of the logs) as long as no callback overrides one.
            self.on_train_batch_end = self._on_train_batch_end  # type: ignore[method-assign]

    # -- what the run is ---------------------------------------------------------------------
    @property
    def unit(self) -> str:
        return self.schedule.unit

    @property
    def batch_size(self) -> int:
        """Patterns per forward pass: as given, or once planned the one ``batch_mb`` allows."""
        return self._plan.batch_size if self._plan is not None else self.spec.batch_size

    @property
    def source(self) -> PatternSource | None:
        return self._plan.source if self._plan is not None else None

    @property
    def selected(self) -> list[LayerInfo]:
        return self._plan.selected if self._plan is not None else []

    @property
    def probe(self) -> Probe | None:
        return self.recorder.probe

    @property
    def records(self) -> int:
        """Records written by this callback (skipped ones not counted)."""
        return self.recorder.records

    def plan(self, model: Any) -> dict[str, Any]:
        """The run description (run.json) this callback writes for ``model``; sets up the
        watched patterns and the selected layers (no probe built, nothing written). Done once
        per model: ``passage capture`` plans before ``fit``, ``on_train_begin`` reuses it."""
        return self._planned(model).info

    def _planned(self, model: Any) -> WatchPlan:
        if self._plan is None or self._plan.model is not model:
            self._plan = plan_watch(model, self.spec, self.schedule.time_info())
        return self._plan

    def expected_keys(self, epochs: int, steps_per_epoch: int | None = None) -> list[int]:
        """Record keys a complete ``fit(epochs=epochs)`` from scratch writes."""
        return self.schedule.expected_keys(epochs, steps_per_epoch)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.recorder.is_open:
            self.recorder.open(self._planned(self.model), self.overwrite)
            self.overwrite = False
        self.recorder.attach(self.model)
        self._start = time.monotonic()
        self._fit_checked = False
        if self.keep_weights:
            remove_temporaries(self.run_dir)
        self._keep(0, self.recorder.record(0))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._fit_checked:
            self._fit_checked = True
            self.recorder.warn_if_restarted(epoch)
        self.schedule.begin_epoch(epoch, self._param("steps"))

    def _on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        key = self.schedule.end_batch()
        if key is not None and self._keep(key, self.recorder.record(key)):
            self.recorder.append_metrics(batch_line(key, self.schedule.epochs_done, logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        key = self.schedule.end_epoch(epoch, self._param("epochs"))
        if key is not None:
            self._keep(key, self.recorder.record(key))
        step = self.schedule.epoch_end_step(self._param("steps"))
        seconds = time.monotonic() - self._start
        self.recorder.append_metrics(epoch_line(self.schedule.epochs_done, step, seconds, logs))

    def _keep(self, key: int, written: bool) -> bool:
        """After record ``key`` (``written``: its files were written now): keep the weights
        it was recorded with. A record a resume skipped keeps the file it has (the weights its
        data came from); only a missing one is saved. Returns ``written``."""
        if self.keep_weights and self.recorder.is_open:
            if written or not weights_file(self.run_dir, key).is_file():
                save_weights(self.model, self.run_dir, key, durable=self.durable)
        return written

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Release the run (its lock and open files); a later ``fit`` opens it again."""
        self.recorder.close()

    def __enter__(self) -> CaptureCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _param(self, name: str) -> Any:
        """What ``fit`` told the callbacks (``epochs``, ``steps``), None when not told."""
        return (self.params or {}).get(name)
