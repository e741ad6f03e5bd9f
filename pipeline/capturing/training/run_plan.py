"""What a training run watches and how it is stored: the watched patterns, the selected
layers, the batch size and the run.json the callback writes (nothing built, nothing written).

The run's fingerprint depends on the model's structure, the selected layers, the watched
patterns, the record schedule and the storage options, never on the weights, so a training
resumed later (a new ``fit`` with ``initial_epoch``, or ``passage capture`` run again)
appends its records to the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...config import SelectConfig
from ...errors import SpecError
from ..identity import arrays_digest, describe_run
from ..inputs import input_shapes
from ..patterns import PatternSource, array_source
from ..probe import layer_infos
from ..selection import LayerInfo, select_layers
from ..stream import choose_batch_size


@dataclass(frozen=True)
class WatchSpec:
    """What ``CaptureCallback`` was asked to watch and how to store it (its arguments).

    ``batch_size`` 0: the largest that ``batch_mb`` allows. ``info`` adds entries to run.json
    (``model`` and ``patterns`` describe the model and the patterns); ``fingerprint_extra``
    adds parts to what identifies the run."""

    patterns: Any
    select: SelectConfig = field(default_factory=SelectConfig)
    layers: Sequence[str] | None = None
    fmt: str = "npy"
    dtype: str = "float32"
    batch_size: int = 256
    batch_mb: int = 64
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint_extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WatchPlan:
    """``spec`` worked out for one ``model``: ``info`` is its run.json."""

    model: Any
    source: PatternSource
    selected: list[LayerInfo]
    batch_size: int
    info: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.selected]


def watched_layers(
    model: Any, select: SelectConfig, names: Sequence[str] | None
) -> list[LayerInfo]:
    """The layers ``names`` (in model order), or those ``select`` picks when not given."""
    infos = layer_infos(model)
    if names is None:
        return select_layers(infos, select)
    by_name = {info.name: info for info in infos}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SpecError(
            f"CaptureCallback layers {missing} are not in model {model.name!r}; expected "
            f"names among: {', '.join(by_name)}"
        )
    wanted = set(names)
    return [info for info in infos if info.name in wanted]


def plan_watch(model: Any, spec: WatchSpec, time_info: dict[str, Any]) -> WatchPlan:
    """The plan of ``spec`` for ``model``, its records scheduled as ``time_info`` says."""
    source = array_source(spec.patterns, input_shapes(model))
    selected = watched_layers(model, spec.select, spec.layers)
    batch_size = spec.batch_size or choose_batch_size(
        selected, spec.dtype, spec.batch_mb << 20, source.count
    )
    identity: dict[str, Any] = {
        "mode": "train",
        "model_name": model.name,
        "patterns": arrays_digest(source.arrays),
        "time": time_info,
        **spec.fingerprint_extra,
    }
    if source.count > batch_size:
        # Several files per layer and record: their split depends on the batch size, so a
        # resume with another one would mix two layouts. (One batch: any size stores the
        # same files, and runs recorded before this part existed keep their fingerprint.)
        identity["batch"] = batch_size
    run = describe_run(
        model,
        source,
        selected,
        mode="train",
        model_spec=spec.info.get("model", f"<in-memory {model.name}>"),
        patterns=spec.info.get("patterns", "<array>"),
        batch_size=batch_size,
        fmt=spec.fmt,
        dtype=spec.dtype,
        details={
            "time": time_info,
            **{k: v for k, v in spec.info.items() if k not in ("model", "patterns")},
        },
        identity=identity,
    )
    return WatchPlan(model, source, selected, batch_size, run.run_json())
