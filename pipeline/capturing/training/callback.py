"""``CaptureCallback``: record watched patterns' layer outputs while a Keras model trains.

The probe (one multi-output model over the selected layers, sharing the model's weights) is
built once, at the first ``on_train_begin``, and reused for every record. A record is written
before training and after every ``every``-th epoch, one file per (record, layer, chunk of
patterns), each with its manifest line appended and flushed at once: a training killed at
epoch 40 keeps epochs 0-39 on disk.

How records are keyed (the manifest's ``epoch`` field, always an int; run.json ``time``):

- ``every_batches == 0`` (default): unit ``"epoch"``; the key is the number of epochs
  completed: 0 before training, k after the k-th epoch (Keras' 0-based ``epoch`` + 1).
- ``every_batches = K > 0``: unit ``"step"``; the key is the number of optimizer steps
  (batches) completed since the start: 0 before training, every K-th step, and each epoch end.
  ``metrics.jsonl`` gives the step of each epoch end, so render can say "step 96 (epoch 3)".

``metrics.jsonl`` gets one line per epoch: ``{"epoch": k, "step": s, "time": seconds, ...logs}``
(the logs Keras passes: loss, metrics, validation values), and in step unit one line per
batch record: ``{"scope": "batch", "step": s, "epoch": epochs completed, "loss": ...}``.

The run's fingerprint depends on the model's structure, the selected layers, the watched
patterns and the storage options, never on the weights, so a training resumed later (a new
``fit`` with ``initial_epoch``, or ``passage capture`` run again) appends its epochs to the
same run. The callback does not touch training: no recompiling, no new trainable state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...config import SelectConfig
from ...errors import ConfigError, SpecError
from ...store import RunWriter
from ...store.manifest import complete_records
from ..framework import keras_and_tf
from ..patterns import PatternSource
from ..probe import Probe, input_shapes, layer_infos
from ..selection import LayerInfo, select_layers
from ..stream import (
    array_source,
    arrays_digest,
    choose_batch_size,
    fingerprint,
    layer_records,
    versions,
)

keras, _tf = keras_and_tf()
log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """A log value as JSON: numbers as float, arrays/tensors as float or list."""
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything unconvertible is stored as text
        return str(value)
    if arr.dtype.kind in "biuf":
        return float(arr) if arr.ndim == 0 else arr.tolist()
    return str(value)


class CaptureCallback(keras.callbacks.Callback):
    """Record the layer outputs of ``patterns`` into the run ``run_dir`` during ``fit``.

    ``patterns``: one array (N, *input_shape), or a list with one array per model input.
    ``select`` picks the layers (the ``seed`` rule by default) unless ``layers`` names them.
    ``every``: record after every N-th epoch (and always after the last one ``fit`` runs);
    ``every_batches``: also every K optimizer steps (keys become steps, see the module doc).
    ``info`` adds entries to run.json (e.g. the dataset and labels of the watched patterns);
    ``fingerprint_extra`` adds parts to what identifies the run; ``durable`` fsyncs every file;
    ``direct_io=False`` writes every file through the page cache (``--buffered-io``).
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
    ) -> None:
        super().__init__()
        if every < 1 or every_batches < 0 or batch_size < 0 or batch_mb < 1:
            raise ConfigError(
                "CaptureCallback: expected every >= 1, every_batches >= 0, batch_size >= 0 (0: "
                f"by batch_mb) and batch_mb >= 1, received every={every}, every_batches="
                f"{every_batches}, batch_size={batch_size}, batch_mb={batch_mb}"
            )
        self.run_dir = Path(run_dir)
        self.patterns = patterns
        self.select = select or SelectConfig()
        self.layer_names = list(layers) if layers is not None else None
        self.every = every
        self.every_batches = every_batches
        self.unit = "step" if every_batches else "epoch"
        self.fmt = fmt
        self.dtype = dtype
        self.durable = durable
        self.direct_io = direct_io
        self.batch_request = batch_size  # 0: chosen by batch_mb when planned
        self.batch_size = batch_size
        self.batch_mb = batch_mb
        self.overwrite = overwrite
        self.extra_info = dict(info or {})
        self.fingerprint_extra = dict(fingerprint_extra or {})
        self.probe: Probe | None = None
        self.writer: RunWriter | None = None
        self.source: PatternSource | None = None
        self.selected: list[LayerInfo] = []
        self._plan: tuple[Any, dict[str, Any]] | None = None  # (model, run.json) once planned
        self.records = 0  # records written by this callback (skipped ones not counted)
        self._probe_model: Any = None
        self._step = 0
        self._epochs_done = 0
        self._start = 0.0
        self._fit_checked = False  # whether this fit's first epoch was compared with the run
        if every_batches:
            # Only then a batch hook: Keras dispatches batch ends asynchronously (no per-step
            # sync of the logs) as long as no callback overrides one.
            self.on_train_batch_end = self._on_train_batch_end  # type: ignore[method-assign]

    # -- what the run is ---------------------------------------------------------------------
    def _selected_layers(self, model: Any) -> list[LayerInfo]:
        infos = layer_infos(model)
        if self.layer_names is None:
            return select_layers(infos, self.select)
        by_name = {info.name: info for info in infos}
        missing = [n for n in self.layer_names if n not in by_name]
        if missing:
            raise SpecError(
                f"CaptureCallback layers {missing} are not in model {model.name!r}; expected "
                f"names among: {', '.join(by_name)}"
            )
        wanted = set(self.layer_names)
        return [info for info in infos if info.name in wanted]

    def plan(self, model: Any) -> dict[str, Any]:
        """The run description (run.json) this callback writes for ``model``; sets up the
        watched patterns and the selected layers (no probe built, nothing written). Done once
        per model: ``passage capture`` plans before ``fit``, ``on_train_begin`` reuses it."""
        if self._plan is not None and self._plan[0] is model:
            return self._plan[1]
        self.source = array_source(self.patterns, input_shapes(model))
        self.selected = self._selected_layers(model)
        self.batch_size = self.batch_request or choose_batch_size(
            self.selected, self.dtype, self.batch_mb << 20, self.source.count
        )
        records = layer_records(self.selected)
        time_info = {"unit": self.unit, "every": self.every, "every_batches": self.every_batches}
        parts = {
            "mode": "train",
            "model_name": model.name,
            "layers": records,
            "patterns": arrays_digest(self.source.arrays),
            "count": self.source.count,
            "format": self.fmt,
            "dtype": self.dtype,
            "time": time_info,
            **self.fingerprint_extra,
        }
        if self.source.count > self.batch_size:
            # Several files per layer and record: their split depends on the batch size, so a
            # resume with another one would mix two layouts. (One batch: any size stores the
            # same files, and runs recorded before this part existed keep their fingerprint.)
            parts["batch"] = self.batch_size
        info: dict[str, Any] = {
            "mode": "train",
            "model": self.extra_info.get("model", f"<in-memory {model.name}>"),
            "model_name": model.name,
            "inputs": [list(s) for s in input_shapes(model)],
            "layers": records,
            "patterns": self.extra_info.get("patterns", "<array>"),
            "pattern_origin": "array",
            "num_patterns": self.source.count,
            "batch_size": self.batch_size,
            "time": time_info,
            "versions": versions(),
            **{k: v for k, v in self.extra_info.items() if k not in ("model", "patterns")},
        }
        info["fingerprint"] = fingerprint(parts)
        self._plan = (model, info)
        return info

    def expected_keys(self, epochs: int, steps_per_epoch: int | None = None) -> list[int]:
        """Record keys a complete ``fit(epochs=epochs)`` from scratch writes."""
        if self.unit == "epoch":
            keys = {0, epochs, *range(self.every, epochs + 1, self.every)}
            return sorted(keys)
        if steps_per_epoch is None:
            raise ConfigError("expected steps_per_epoch for a run keyed by steps")
        total = epochs * steps_per_epoch
        keys = {0, *range(self.every_batches, total + 1, self.every_batches)}
        keys.update(e * steps_per_epoch for e in range(self.every, epochs + 1, self.every))
        keys.add(total)
        return sorted(keys)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.model
        if self.writer is None:
            info = self.plan(model)
            self.writer = RunWriter(
                self.run_dir,
                info,
                fmt=self.fmt,
                dtype=self.dtype,
                overwrite=self.overwrite,
                durable=self.durable,
                direct_io=self.direct_io,
            ).open()
            self.overwrite = False  # a second fit continues the same run
        if self.probe is None or self._probe_model is not model:
            self.probe = Probe(model, self.selected)
            self._probe_model = model
        self._start = time.monotonic()
        self._fit_checked = False
        self._record(0)

    def _warn_if_restarted(self, epoch: int) -> None:
        """A second ``fit`` without ``initial_epoch`` numbers its epochs from 0 again: the
        records it would make are in the run already, from the earlier training, and are kept
        (a resume never rewrites a complete record). Say so rather than drop them silently."""
        if epoch != 0 or self.writer is None or self.source is None:
            return  # a fit given initial_epoch continues the run on purpose (a resume)
        names = [info.name for info in self.selected]
        done = complete_records(self.writer.done.values(), names, self.source.count)
        later = [k for k in done if k > 0]
        if later:
            hint = f"initial_epoch={later[-1]}" if self.unit == "epoch" else "initial_epoch"
            log.warning(
                "%s already holds records up to %s %d and this fit starts again at 0: what it "
                "records there is kept from the earlier training, not replaced. Pass %s to "
                "fit to continue the run, or use overwrite=True to start it again",
                self.run_dir,
                self.unit,
                later[-1],
                hint,
            )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._fit_checked:
            self._fit_checked = True
            self._warn_if_restarted(epoch)
        self._epochs_done = epoch
        steps = (self.params or {}).get("steps")
        if self.unit == "step" and steps and self._step < epoch * steps:
            self._step = epoch * steps  # fit resumed at initial_epoch

    def _on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        if self.every_batches and self._step % self.every_batches == 0:
            if self._record(self._step):
                line = {"scope": "batch", "step": self._step, "epoch": self._epochs_done}
                line.update({k: _plain(v) for k, v in (logs or {}).items()})
                self._metrics(line)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        self._epochs_done = done
        last = done == (self.params or {}).get("epochs")
        key = done if self.unit == "epoch" else self._step
        if done % self.every == 0 or last:
            self._record(key)
        steps = (self.params or {}).get("steps")
        step = self._step if self.unit == "step" else (done * steps if steps else None)
        line: dict[str, Any] = {"epoch": done, "step": step}
        line["time"] = round(time.monotonic() - self._start, 4)
        line.update({k: _plain(v) for k, v in (logs or {}).items()})
        self._metrics(line)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Release the run (its lock and open files); a later ``fit`` opens it again."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> CaptureCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording ---------------------------------------------------------------------------
    def _metrics(self, line: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.append_metrics(line)

    def _record(self, key: int) -> bool:
        """Write every layer's output of the watched patterns under ``key``; skip what the
        manifest already holds. Returns whether anything was written."""
        writer, probe, source = self.writer, self.probe, self.source
        if writer is None or probe is None or source is None:
            return False
        names = [info.name for info in self.selected]
        wrote = False
        for first in range(0, source.count, self.batch_size):
            missing = [n for n in names if not writer.has(n, key, first)]
            if not missing:
                continue
            size = min(self.batch_size, source.count - first)
            outputs = probe(source.batch(first, size))
            for name, out in zip(names, outputs, strict=True):
                if name in missing:
                    writer.write(name, key, first, out)
            wrote = True
        if wrote:
            self.records += 1
            log.debug("recorded %s %d into %s", self.unit, key, self.run_dir)
        return wrote
