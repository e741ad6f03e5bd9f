"""Validated configuration: TOML file + CLI flags -> frozen dataclasses.

Unknown keys and wrong types are errors that name the key. Flags override the file. Relative
paths in a file follow the file's folder (``config_paths``); paths given as flags follow the
current directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .config_paths import resolve_file_paths
from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("npy", "json")
DTYPES = ("float32", "float16")
RESIZES = ("squash", "crop")  # how an image folder is brought to the input's size; first: default
# Layer selection rules (pipeline/capturing/selection.py); the first is the default.
RULES = ("maps", "seed", "all")
SIZE_RULES = ("maps", "seed")  # the rules that compare an output's first two axes to min_size


@dataclass(frozen=True)
class SelectConfig:
    rule: str = "maps"
    min_size: tuple[int, ...] = (15, 15)
    # Every rule: per-pattern output axis i must be >= min_axis[i] (one value: every axis);
    # an output with fewer axes than listed does not qualify. Empty: no limit.
    min_axis: tuple[int, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    exclude_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaptureConfig:
    model: str = "builtin:seed"
    patterns: str = "random:1"
    out: str = "runs/seed"
    format: str = "npy"
    dtype: str = "float32"
    # Patterns per forward pass (and per data file); 0: the largest power of two whose
    # captured outputs fit in batch_mb MiB (see pipeline.capturing.stream.choose_batch_size).
    batch_size: int = 0
    batch_mb: int = 64
    architecture: bool = True
    overwrite: bool = False
    unsafe: bool = False
    queue_size: int = 4
    # Capture only the first N patterns of the source (0: all); needed for endless generators.
    limit: int = 0
    # Large data files bypass the page cache (O_DIRECT) where the filesystem allows it.
    direct_io: bool = True
    # fsync every data file and manifest line (survives power loss; slower).
    fsync: bool = False
    # Model input name -> key of the .npz archive that feeds it (several inputs).
    inputs: dict[str, str] = field(default_factory=dict)
    # Store the model's inputs with the run (render draws them first); None: only when the
    # patterns come from an image folder. Batch capture only.
    keep_inputs: bool | None = None
    # What the model is fed for image-folder patterns: "" (pixels in [0, 1]), a Keras
    # Applications family ("resnet50", "mobilenet_v2": its preprocess_input of 0..255 pixels)
    # or "module:function" of a float32 batch in 0..255.
    preprocess: str = ""
    # How images are brought to the input's (H, W): "squash" (stretch) or "crop" (scale the
    # shorter side to size, then cut the centre).
    resize: str = "squash"


@dataclass(frozen=True)
class RenderConfig:
    out: str = ""  # empty: RUN/render
    grid: tuple[int, int] = (3, 3)
    cmap: str = "viridis"
    dpi: int = 100
    figsize: tuple[float, float] = (10.0, 10.0)
    patterns: str = ""  # empty: all; "0,3,5-9" otherwise
    workers: int = 0  # 0: one per core
    vector: str = "square"  # "square" or "strip"
    max_channels: int = 64
    scale: str = "layer"  # color scale of a channel mosaic: "layer" (one) or "channel" (each)


@dataclass(frozen=True)
class AnalyzeConfig:
    epoch: str = "all"  # "all" or an epoch number
    labels: str = ""  # .npy of one integer per pattern; empty: a training run's own labels
    against: str = ""  # another run over the same patterns: cross-run CKA
    top: int = 9  # patterns kept per channel
    workers: int = 0  # 0: one per core when the data is large enough
    cka: bool = True
    cka_method: str = "auto"  # "auto" (exact while its state fits 1 GiB), "exact" or "sketch"
    pictures: bool = True
    max_channels: int = 64


@dataclass(frozen=True)
class CompareConfig:
    # Reference RDM files (.npy, .mat, .h5); "V1=v1.mat" names the reference after a region.
    rdms: tuple[str, ...] = ()
    # Responses (conditions x voxels, or repeats x conditions x voxels): RDMs and encoding.
    responses: tuple[str, ...] = ()
    name: str = ""  # RUN/compare/NAME; empty: the first file's stem
    distance: str = "correlation"  # of the model RDMs: correlation, euclidean, cosine
    method: str = "tau-a"  # RDM comparison (docs/compare.md)
    epoch: str = "all"  # "all" or an epoch number
    bootstrap: int = 1000  # samples of the 95 % intervals (0: none)
    seed: int = 0
    conditions: str = ""  # .npy of the run's pattern indices, one per condition, in order
    labels: str = ""  # .npy of one integer per condition (groups the RDM pictures)
    workers: int = 0  # 0: one per core when the layers are large enough
    pictures: bool = True


@dataclass(frozen=True)
class VisualizeConfig:
    layers: tuple[str, ...] = ()  # name globs over the run's layers; empty: every layer
    channels: str = ""  # "0-15,20" or "all"; empty: the first 64 channels of each layer
    steps: int = 512  # optimization steps per batch of channels
    size: tuple[int, ...] = ()  # [H, W] of the optimized image; empty: the input's own size
    seed: int = 0
    lr: float = 0.05  # Adam's learning rate
    epochs: str = ""  # "all", "last" or "0,5,20"; empty: up to 4 evenly spaced kept epochs
    top: int | None = None  # top patterns attributed (0: none); unset: the analysis' K, <= 9
    samples: int = 32  # SmoothGrad's noisy copies per pattern
    noise: float = 0.15  # SmoothGrad's sigma, a fraction of the input range
    batch: int = 0  # channels optimized together; 0: as many as the memory budget allows
    overwrite: bool = False  # visualize again what was visualized with other settings
    pictures: bool = True
    unsafe: bool = False  # like [capture] unsafe: reload a model holding Lambda layers


@dataclass(frozen=True)
class DaskConfig:
    # tcp://host:port of a running Dask scheduler, or local[:N] for a cluster of N worker
    # processes on this machine; empty: everything runs here and Dask is not imported.
    address: str = ""
    batches_per_task: int = 0  # capture batches per Dask task; 0: by their size
    timeout: float = 10.0  # seconds to reach the scheduler


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = ""
    x_key: str = "x"
    y_key: str = "y"
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    loss: str = "sparse_categorical_crossentropy"
    metrics: tuple[str, ...] = ("accuracy",)
    learning_rate: float = 0.0  # 0: the optimizer's default
    watch: str = ""  # pattern spec of the watched patterns; empty: from the dataset
    watch_per_class: int = 2
    every: int = 1
    every_batches: int = 0
    seed: int = 0
    resume: bool = True  # keep the last finished epoch in RUN/train-backup to resume after a crash
    # Keep the weights of every recorded epoch in RUN/weights/ (what `passage visualize`
    # reloads for each epoch); not part of the run's identity.
    keep_weights: bool = True


@dataclass(frozen=True)
class Config:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train: TrainConfig | None = None
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(section: str, key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotated type ``tp``; return it in that type."""
    where = f"[{section}] {key}"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # X | None: None is the default ("auto")
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(section, key, value, args[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, received {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(section, key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} items, received {value!r}")
        return tuple(_coerce(section, key, v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(
                f'{where}: expected a table such as {{name = "key"}}, received {value!r}'
            )
        return {
            _coerce(section, key, k, key_tp): _coerce(section, key, v, value_tp)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, received {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, received {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, received {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, received {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, section: str, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{section}]: expected a table, received {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"unknown config key [{section}] {key!r}; expected one of: {', '.join(sorted(known))}"
            )
    values = {k: _coerce(section, k, v, hints[k]) for k, v in data.items()}
    return cls(**values)


def _validate(cfg: Config) -> Config:
    c, s, r = cfg.capture, cfg.select, cfg.render
    if c.format not in FORMATS:
        raise ConfigError(f"[capture] format: expected one of {FORMATS}, received {c.format!r}")
    if c.dtype not in DTYPES:
        raise ConfigError(f"[capture] dtype: expected one of {DTYPES}, received {c.dtype!r}")
    if c.batch_size < 0:
        raise ConfigError(
            f"[capture] batch_size: expected >= 1, or 0 to choose it by batch_mb, received "
            f"{c.batch_size}"
        )
    if c.batch_mb < 1:
        raise ConfigError(f"[capture] batch_mb: expected >= 1 (MiB), received {c.batch_mb}")
    if c.queue_size < 1:
        raise ConfigError(f"[capture] queue_size: expected >= 1, received {c.queue_size}")
    if c.limit < 0:
        raise ConfigError(f"[capture] limit: expected >= 0 (0: all patterns), received {c.limit}")
    if c.resize not in RESIZES:
        raise ConfigError(f"[capture] resize: expected one of {RESIZES}, received {c.resize!r}")
    if s.rule not in RULES:
        raise ConfigError(f"[select] rule: expected one of {RULES}, received {s.rule!r}")
    if s.rule in SIZE_RULES and len(s.min_size) != 2:
        raise ConfigError(
            f"[select] min_size: expected a list of 2 items [H, W] for the {s.rule} rule, "
            f"received {list(s.min_size)}"
        )
    if any(v < 0 for v in s.min_size):
        raise ConfigError(f"[select] min_size: expected sizes >= 0, received {s.min_size}")
    if any(v < 0 for v in s.min_axis):
        raise ConfigError(f"[select] min_axis: expected sizes >= 0, received {s.min_axis}")
    if min(r.grid) < 1:
        raise ConfigError(f"[render] grid: expected rows and columns >= 1, received {r.grid}")
    if r.vector not in ("square", "strip"):
        raise ConfigError(f"[render] vector: expected 'square' or 'strip', received {r.vector!r}")
    if r.max_channels < 1:
        raise ConfigError(f"[render] max_channels: expected >= 1, received {r.max_channels}")
    if r.scale not in ("layer", "channel"):
        raise ConfigError(f"[render] scale: expected 'layer' or 'channel', received {r.scale!r}")
    if r.workers < 0:
        raise ConfigError(f"[render] workers: expected >= 0, received {r.workers}")
    a = cfg.analyze
    if a.epoch != "all" and not a.epoch.isdigit():
        raise ConfigError(
            f"[analyze] epoch: expected 'all' or an epoch number, received {a.epoch!r}"
        )
    if a.top < 1 or a.workers < 0 or a.max_channels < 1:
        raise ConfigError(
            "[analyze]: expected top >= 1, workers >= 0 and max_channels >= 1, received "
            f"top={a.top} workers={a.workers} max_channels={a.max_channels}"
        )
    if a.cka_method not in ("auto", "exact", "sketch"):
        raise ConfigError(
            f"[analyze] cka_method: expected 'auto', 'exact' or 'sketch', received {a.cka_method!r}"
        )
    m = cfg.compare
    if m.epoch != "all" and not m.epoch.isdigit():
        raise ConfigError(
            f"[compare] epoch: expected 'all' or an epoch number, received {m.epoch!r}"
        )
    if m.bootstrap < 0 or m.workers < 0:
        raise ConfigError(
            "[compare]: expected bootstrap >= 0 (0: no intervals) and workers >= 0, received "
            f"bootstrap={m.bootstrap} workers={m.workers}"
        )
    _validate_visualize(cfg.visualize)
    d = cfg.dask
    if d.batches_per_task < 0 or d.timeout <= 0:
        raise ConfigError(
            "[dask]: expected batches_per_task >= 0 (0: by size) and timeout > 0 seconds, "
            f"received batches_per_task={d.batches_per_task} timeout={d.timeout}"
        )
    t = cfg.train
    if t is not None and (c.preprocess or c.resize != RESIZES[0]):
        raise ConfigError(
            "[capture] preprocess/resize: training runs feed their dataset as it is; expected "
            f"them unset with a [train] table, received preprocess={c.preprocess!r} "
            f"resize={c.resize!r}; preprocess the dataset in its factory instead"
        )
    if t is not None and c.keep_inputs:
        raise ConfigError(
            "[capture] keep_inputs: training runs do not store their inputs yet; expected "
            "false or unset with a [train] table, received true; drop --keep-inputs, or "
            "capture the watched patterns in batch mode to keep them"
        )
    if t is not None:
        if not t.dataset:
            raise ConfigError("[train] dataset: expected a dataset spec such as 'builtin:stripes'")
        if t.epochs < 1 or t.batch_size < 1 or t.every < 1 or t.every_batches < 0:
            raise ConfigError(
                "[train]: expected epochs, batch_size and every >= 1 and every_batches >= 0, "
                f"received epochs={t.epochs} batch_size={t.batch_size} every={t.every} "
                f"every_batches={t.every_batches}"
            )
    return cfg


_CHANNELS = re.compile(r"^(all|\s*\d+(\s*-\s*\d+)?\s*(,\s*\d+(\s*-\s*\d+)?\s*)*)$")
_EPOCHS = re.compile(r"^(all|last|\s*\d+\s*(,\s*\d+\s*)*)$")


def _validate_visualize(v: VisualizeConfig) -> None:
    if v.channels and not _CHANNELS.match(v.channels):
        raise ConfigError(
            f"[visualize] channels: expected 'all' or channel numbers and ranges such as "
            f"'0-15,20', received {v.channels!r}"
        )
    if v.epochs and not _EPOCHS.match(v.epochs):
        raise ConfigError(
            f"[visualize] epochs: expected 'all', 'last' or epoch numbers such as '0,5,20', "
            f"received {v.epochs!r}"
        )
    if v.size and (len(v.size) != 2 or min(v.size) < 1):
        raise ConfigError(
            f"[visualize] size: expected [H, W] with sizes >= 1, or empty, received {list(v.size)}"
        )
    if v.steps < 1 or v.samples < 1 or v.batch < 0 or (v.top is not None and v.top < 0):
        raise ConfigError(
            "[visualize]: expected steps >= 1, samples >= 1, batch >= 0 (0: by memory) and "
            f"top >= 0, received steps={v.steps} samples={v.samples} batch={v.batch} "
            f"top={v.top}"
        )
    if not v.lr > 0 or not v.noise >= 0:
        raise ConfigError(
            f"[visualize]: expected lr > 0 and noise >= 0, received lr={v.lr} noise={v.noise}"
        )


SECTIONS: dict[str, type] = {
    "capture": CaptureConfig,
    "select": SelectConfig,
    "render": RenderConfig,
    "train": TrainConfig,
    "analyze": AnalyzeConfig,
    "compare": CompareConfig,
    "visualize": VisualizeConfig,
    "dask": DaskConfig,
}


def from_dict(data: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts (a parsed TOML file)."""
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(
                f"unknown config section [{key}]; expected one of: {', '.join(SECTIONS)}"
            )
    parts = {name: _build(cls, name, data[name]) for name, cls in SECTIONS.items() if name in data}
    return _validate(Config(**parts))


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file; its relative paths follow its folder."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {p}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    return from_dict(resolve_file_paths(data, os.path.dirname(os.fspath(path))))


def parse_sizes(
    text: str, where: str, count: int | None = None, minimum: int = 0, example: str = "15x15"
) -> tuple[int, ...]:
    """The one parser of "AxB" sizes (``--grid``, ``--min-size``, ``--min-axis``): '15x15' ->
    (15, 15), '8' -> (8,). ``count``: how many sizes must be given (None: any number);
    ``minimum``: the smallest size allowed; ``where`` names the flag or key in the error."""
    wanted = f"AxB such as {example}" if count == 2 else f"N or AxB such as 8 or {example}"
    try:
        values = tuple(int(part) for part in text.strip().lower().split("x"))
    except ValueError:
        raise ConfigError(f"{where}: expected {wanted}, received {text!r}") from None
    if count is not None and len(values) != count:
        raise ConfigError(f"{where}: expected {count} sizes, {wanted}, received {text!r}")
    if any(v < minimum for v in values):
        raise ConfigError(f"{where}: expected sizes >= {minimum}, received {text!r}")
    return values


def override(cfg: Config, section: str, **values: Any) -> Config:
    """Return ``cfg`` with the non-None ``values`` replaced in ``section`` (flags over file)."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    current = getattr(cfg, section)
    if current is None:
        current = SECTIONS[section]()
    hints = typing.get_type_hints(type(current))
    checked = {k: _coerce(section, k, v, hints[k]) for k, v in values.items()}
    return _validate(replace(cfg, **{section: replace(current, **checked)}))
