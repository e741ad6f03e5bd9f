"""What ``passage visualize`` is asked to do, settled from its flags (pure: no TensorFlow, no
files): layers by glob, channels and epochs by spec, channel batches, the settings record and
how it differs from a stored one."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ...errors import ConfigError

DEFAULT_CHANNELS = 64  # channels per layer when --channels is not given
DEFAULT_EPOCHS = 4  # kept epochs visualized when --epochs is not given
MAX_DEFAULT_TOP = 9  # the default --top: the analysis' K, at most this
SETTINGS_VERSION = 1


def match_layers(layers: Sequence[str], globs: Sequence[str] | None) -> list[str]:
    """The run's ``layers`` (in run order) matching any of ``globs`` (None or empty: all); a
    glob matching no layer is an error naming the layers there are."""
    if not globs:
        return list(layers)
    for glob in globs:
        if not any(fnmatch.fnmatchcase(name, glob) for name in layers):
            raise ConfigError(
                f"layers: {glob!r} matches none of the run's layers; expected a name or glob "
                f"over: {', '.join(layers)}"
            )
    return [name for name in layers if any(fnmatch.fnmatchcase(name, g) for g in globs)]


def parse_channels(spec: str | Sequence[int] | None, count: int) -> list[int]:
    """Sorted unique channels of a layer with ``count`` channels: ``"all"``, ``"0-15,20"``
    (ranges inclusive), a list of ints, or None/"" for the first ``DEFAULT_CHANNELS``. A
    channel past the layer's last is an error."""
    if spec is None or spec == "":
        return list(range(min(count, DEFAULT_CHANNELS)))
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(count))
        wanted: set[int] = set()
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            try:
                a, b = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise ConfigError(
                    f"channels: expected 'all' or channel numbers and ranges such as "
                    f"'0-15,20', received {spec!r}"
                ) from None
            if a < 0 or b < a:
                raise ConfigError(
                    f"channels: expected ranges A-B with 0 <= A <= B, received {part.strip()!r}"
                )
            wanted.update(range(a, b + 1))
    else:
        wanted = {int(c) for c in spec}
        if any(c < 0 for c in wanted):
            raise ConfigError(f"channels: expected channels >= 0, received {sorted(wanted)}")
    if not wanted:
        raise ConfigError(f"channels: expected at least one channel, received {spec!r}")
    if max(wanted) >= count:
        raise ConfigError(
            f"channels: the layer has {count} channel(s) (0-{count - 1}); received channel "
            f"{max(wanted)} in {spec!r}"
        )
    return sorted(wanted)


def channel_batches(channels: Sequence[int], batch: int) -> list[list[int]]:
    """``channels`` (sorted) cut into batches of consecutive channels, at most ``batch`` each:
    every run of consecutive channels is cut from its start, so the same channels and batch
    size always give the same batches (a resume finds the files it wrote)."""
    if batch < 1:
        raise ConfigError(f"batch: expected >= 1 channels per batch, received {batch}")
    runs: list[list[int]] = []
    for c in channels:
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return [run[i : i + batch] for run in runs for i in range(0, len(run), batch)]


def spaced(epochs: Sequence[int], n: int = DEFAULT_EPOCHS) -> list[int]:
    """Up to ``n`` of ``epochs`` (sorted), evenly spaced, the first and the last included."""
    if len(epochs) <= n:
        return list(epochs)
    picks = {round(i * (len(epochs) - 1) / (n - 1)) for i in range(n)}
    return [epochs[i] for i in sorted(picks)]


def parse_epochs(spec: str | Sequence[int] | None, kept: Sequence[int]) -> list[int]:
    """The epochs of a training run to visualize among ``kept`` (those whose weights can be
    reloaded, sorted): None/"" up to ``DEFAULT_EPOCHS`` evenly spaced, ``"all"``, ``"last"``,
    ``"0,5,20"`` or a list of ints. An epoch whose weights are not kept is an error listing the
    kept ones."""
    if not kept:
        raise ConfigError(
            "epochs: no weights are kept for any recorded epoch of this training run (captured "
            "with [train] keep_weights = false?); capture it again with keep_weights = true"
        )
    if spec is None or spec == "":
        return spaced(kept)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(kept)
        if text == "last":
            return [kept[-1]]
        try:
            wanted = sorted({int(p) for p in text.split(",")})
        except ValueError:
            raise ConfigError(
                f"epochs: expected 'all', 'last' or epoch numbers such as '0,5,20', received "
                f"{spec!r}"
            ) from None
    else:
        wanted = sorted({int(e) for e in spec})
    missing = [e for e in wanted if e not in kept]
    if missing:
        raise ConfigError(
            f"epochs: no weights are kept for epoch(s) {missing}; kept epochs: "
            f"{', '.join(map(str, kept))}"
        )
    return wanted


def default_top(analysis_k: int | None, top: int | None) -> int:
    """Top patterns to attribute: ``top`` when given (at most the analysis' K), else the
    analysis' K but at most ``MAX_DEFAULT_TOP``; 0 without an analysis (``analysis_k`` None)."""
    if analysis_k is None or top == 0:
        return 0
    if top is None:
        return min(analysis_k, MAX_DEFAULT_TOP)
    if top > analysis_k:
        raise ConfigError(
            f"top: the analysis kept {analysis_k} top pattern(s) per channel; received {top}: "
            f"ask for at most {analysis_k}, or run `passage analyze --top {top}` first"
        )
    return top


def canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as its JSON record reads back (lists, not tuples; plain numbers)."""
    return orjson.loads(orjson.dumps(dict(settings), option=orjson.OPT_SERIALIZE_NUMPY))


ADDABLE = ("channels",)  # more channels may join a record; they do not change the others' files
ATTRIBUTION = ("top", "samples", "noise")  # settings of the attribution files alone


def settings_diff(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``key stored -> wanted`` for every setting that differs (empty: the same), but the
    channels: asking for others adds them to those visualized; and the attribution's when the
    record has none (visualized before an analysis): it is added to the images."""
    old, new = canonical(stored), canonical(wanted)
    out = []
    ignored = set(ADDABLE) | (set(ATTRIBUTION) if old.get("top") == 0 else set())
    for key in sorted((set(old) | set(new)) - ignored):
        a, b = old.get(key), new.get(key)
        if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=0.0):
            continue
        if a != b:
            out.append(f"{key} {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 6 and all(isinstance(v, int) for v in value):
        return compact_channels(value)
    return repr(value)


def compact_channels(channels: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2,5'``."""
    parts = []
    for run in channel_batches(sorted(channels), max(len(channels), 1)):
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)
