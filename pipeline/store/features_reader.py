"""Read what ``passage visualize`` stored (``Run.feature``, ``features_of``, ``attribution``,
``top_patterns``): manifest entries under ``features/`` resolved to (layer, epoch, kind, first),
files read with their checksum checked, the settings from ``features/index.json`` and the
best activation over the run's patterns from ``analyze``'s file. No TensorFlow here."""

from __future__ import annotations

import bisect
import math
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import NotInRunError
from . import analysis_files
from .feature_files import layer_settings
from .feature_keys import ATTRIBUTION_KINDS, is_feature_path, parse_feature_key
from .manifest import ManifestEntry
from .runinfo import LayerRecord


class Run(Protocol):
    """What this module reads of a run (``store.reader.Run``): a protocol, so that the reader
    can use this module without an import cycle."""

    path: Path

    @property
    def layers(self) -> list[str]: ...

    def layer(self, name: str) -> LayerRecord: ...

    def analysis(self, layer: str, epoch: int | None = None) -> dict[str, np.ndarray]: ...

    def load(self, entry: ManifestEntry, mmap: bool = True, check: bool = False) -> np.ndarray: ...


Files = dict[tuple[str, int | None], dict[str, list[ManifestEntry]]]
SETTING_KEYS = ("steps", "seed", "space", "low", "high", "preprocess")


def split_entries(
    entries: Iterable[ManifestEntry],
) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(data entries, feature entries): the feature ones by path under ``features/``, the last
    line of each key kept, sorted by (layer key, epoch, first)."""
    data: list[ManifestEntry] = []
    latest: dict[tuple[int | None, str, int], ManifestEntry] = {}
    for e in entries:
        if is_feature_path(e.path):
            latest[e.key] = e
        else:
            data.append(e)
    ordered = sorted(latest.values(), key=lambda e: (e.layer, e.epoch or 0, e.first))
    return data, ordered


def index_files(entries: Iterable[ManifestEntry]) -> Files:
    """(layer, epoch) -> kind -> entries sorted by first channel."""
    files: Files = {}
    for e in entries:
        parsed = parse_feature_key(e.layer)
        if parsed is not None:
            kind, layer = parsed
            files.setdefault((layer, e.epoch), {}).setdefault(kind, []).append(e)
    for kinds in files.values():
        for listed in kinds.values():
            listed.sort(key=lambda e: e.first)
    return files


def _command(run: Run, layer: str, extra: str = "") -> str:
    return f"`passage visualize {shlex.quote(str(run.path))} --layers {shlex.quote(layer)}{extra}`"


def _at(epoch: int | None) -> str:
    return "" if epoch is None else f" at epoch {epoch}"


def feature_layers(run: Run, files: Files) -> list[str]:
    """Layers with visualizations, in the run's layer order."""
    held = {layer for (layer, _), kinds in files.items() if _batches(kinds)}
    return [name for name in run.layers if name in held]


def feature_epochs(run: Run, files: Files, layer: str) -> list[int | None]:
    """Epochs at which ``layer`` was visualized, sorted (``[None]`` in a batch run)."""
    run.layer(layer)
    epochs = {ep for (name, ep), kinds in files.items() if name == layer and _batches(kinds)}
    if None in epochs:
        return [None]
    return sorted(epochs)  # type: ignore[type-var]


def resolve(run: Run, files: Files, layer: str, epoch: int | None) -> int | None:
    """``epoch`` checked to be visualized for ``layer``; None: the last visualized one."""
    epochs = feature_epochs(run, files, layer)
    if not epochs:
        raise NotInRunError(
            f"layer {layer!r} has no feature visualizations in {run.path}; run "
            f"{_command(run, layer)} first"
        )
    if epoch is None:
        return epochs[-1]
    if epoch not in epochs:
        shown = "none (a batch run)" if epochs == [None] else str(epochs)
        raise NotInRunError(
            f"layer {layer!r} was not visualized at epoch {epoch} in {run.path}; visualized "
            f"epochs: {shown}; run {_command(run, layer, f' --epochs {epoch}')}"
        )
    return epoch


def _find(listed: list[ManifestEntry], channel: int) -> ManifestEntry | None:
    i = bisect.bisect_right([e.first for e in listed], channel) - 1
    if i < 0 or channel >= listed[i].first + listed[i].count:
        return None
    return listed[i]


def _batches(kinds: dict[str, list[ManifestEntry]]) -> list[tuple[ManifestEntry, ManifestEntry]]:
    """(image, activation) entries of the complete batches (both files listed)."""
    activation = {(e.first, e.count): e for e in kinds.get("activation", [])}
    return [
        (e, activation[(e.first, e.count)])
        for e in kinds.get("image", [])
        if (e.first, e.count) in activation
    ]


def _row(run: Run, entry: ManifestEntry, channel: int) -> np.ndarray:
    return np.array(run.load(entry, check=True)[channel - entry.first])


def visualized_channels(run: Run, files: Files, layer: str, epoch: int | None) -> np.ndarray:
    """The channels of ``layer`` visualized at ``epoch`` (resolved), sorted, int64."""
    kinds = files.get((layer, epoch), {})
    parts = [np.arange(img.first, img.first + img.count) for img, _ in _batches(kinds)]
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


def _describe(channels: np.ndarray) -> str:
    if channels.size == 0:
        return "none"
    runs, start = [], int(channels[0])
    for prev, cur in zip(channels[:-1], channels[1:], strict=True):
        if cur != prev + 1:
            runs.append((start, int(prev)))
            start = int(cur)
    runs.append((start, int(channels[-1])))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _batch_of(run: Run, files: Files, layer: str, epoch: int | None, channel: int):
    kinds = files.get((layer, epoch), {})
    for img, act in _batches(kinds):
        if img.first <= channel < img.first + img.count:
            return img, act
    done = _describe(visualized_channels(run, files, layer, epoch))
    raise NotInRunError(
        f"channel {channel} of layer {layer!r}{_at(epoch)} was not visualized in {run.path} "
        f"(visualized channels: {done}); run {_command(run, layer, f' --channels {channel}')}"
    )


def dataset_top(run: Run, layer: str, epoch: int | None) -> np.ndarray | None:
    """``analyze``'s best activation of every channel (``top_value[:, 0]``), or None when the
    run has no analysis of ``layer`` at ``epoch``."""
    try:
        top = run.analysis(layer, epoch)["top_value"]
    except NotInRunError:
        return None
    if top.ndim != 2 or top.shape[1] == 0:
        return None
    return np.asarray(top[:, 0], dtype=np.float64)


def _best(top: np.ndarray | None, channel: int) -> float:
    if top is None or not 0 <= channel < top.shape[0]:
        return math.nan
    return float(top[channel])


def _settings(run: Run, layer: str, epoch: int | None) -> dict[str, Any]:
    return dict(layer_settings(run.path, layer, epoch) or {})


def feature(run: Run, files: Files, layer: str, channel: int, epoch: int | None) -> dict[str, Any]:
    ep = resolve(run, files, layer, epoch)
    img, act = _batch_of(run, files, layer, ep, int(channel))
    settings = _settings(run, layer, ep)
    out: dict[str, Any] = {
        "image": _row(run, img, channel),
        "activation": float(_row(run, act, channel)),
        "dataset_activation": _best(dataset_top(run, layer, ep), int(channel)),
    }
    out.update({key: settings.get(key) for key in SETTING_KEYS})
    out["epoch"] = ep
    out["channel"] = int(channel)
    return out


def features_of(run: Run, files: Files, layer: str, epoch: int | None) -> dict[str, Any]:
    ep = resolve(run, files, layer, epoch)
    batches = _batches(files.get((layer, ep), {}))
    images = [np.asarray(run.load(img, check=True)) for img, _ in batches]
    acts = [np.asarray(run.load(act, check=True)) for _, act in batches]
    chans = [np.arange(img.first, img.first + img.count, dtype=np.int64) for img, _ in batches]
    channels, keep = np.unique(np.concatenate(chans), return_index=True)
    top = dataset_top(run, layer, ep)
    settings = _settings(run, layer, ep)
    out: dict[str, Any] = dict(settings)
    out.update(
        settings=settings,
        epoch=ep,
        channels=channels.astype(np.int64),
        images=np.concatenate(images)[keep],
        activation=np.concatenate(acts)[keep],
        dataset_activation=np.array([_best(top, int(c)) for c in channels], dtype=np.float64),
    )
    return out


def top_patterns(
    run: Run, files: Files, layer: str, channel: int, epoch: int | None
) -> dict[str, np.ndarray]:
    ep = resolve(run, files, layer, epoch)
    _batch_of(run, files, layer, ep, int(channel))  # visualized at all?
    kinds = files.get((layer, ep), {})
    found = {kind: _find(kinds.get(kind, []), int(channel)) for kind in ATTRIBUTION_KINDS}
    if any(entry is None for entry in found.values()):
        rec = run.layer(layer)
        analysed = (
            analysis_files.folder(run.path) / analysis_files.layer_file(rec.dir, ep)
        ).exists()
        settings = _settings(run, layer, ep)
        if not analysed or not settings.get("top"):
            what = f"run `passage analyze {shlex.quote(str(run.path))}`, then {_command(run, layer)} again"
            why = "no top patterns were known when it was visualized"
        else:
            what = f"run {_command(run, layer)} again to finish it"
            why = "its attribution files are not all written"
        raise NotInRunError(
            f"no attribution for channel {channel} of layer {layer!r}{_at(ep)} in {run.path}: "
            f"{why}; {what}"
        )
    rows = {kind: _row(run, entry, int(channel)) for kind, entry in found.items() if entry}
    return {
        "index": rows["top_index"],
        "value": rows["top_value"],
        "input": rows["top_input"],
        "attribution": rows["attribution"],
    }
