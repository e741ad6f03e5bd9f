"""Patterns held in arrays: ``file.npy`` (memory-mapped, no pickles), ``file.npz[:key]`` (one
key per input for several inputs; ``load_npz`` also reads training datasets) and arrays given
in memory (``array_source``)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import PassageError, PatternError, SpecError
from .source import PatternSource, check_shapes


def load_npy(path: Path, spec: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise PatternError(
            f"pattern file {path}: {exc}; object/pickled arrays are refused, save a numeric array"
        ) from exc
    except OSError as exc:
        raise PatternError(f"pattern file {path} cannot be read: {exc}") from exc


def _npz_keys(
    keys: list[str], key: str | None, names: Sequence[str], key_map: Mapping[str, str], spec: str
) -> list[str]:
    """Which archive key feeds each model input."""
    if key is not None:
        if len(names) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: one key feeds one input, but the model has inputs "
                f"{list(names)}; drop ':{key}' and name a key per input in [capture] inputs, "
                "or store one key per input name"
            )
        return [key]
    unknown = sorted(set(key_map) - set(names))
    if unknown:
        raise SpecError(
            f"[capture] inputs names {unknown}, which are not model inputs; expected names "
            f"from {list(names)}"
        )
    if len(names) == 1 and not key_map:
        if names[0] in keys:
            return [names[0]]
        if len(keys) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: the archive holds {keys}; name one as '{spec}:KEY'"
            )
        return keys
    chosen = [key_map.get(n, n) for n in names]
    missing = [f"{n} -> {k}" for n, k in zip(names, chosen, strict=True) if k not in keys]
    if missing:
        raise SpecError(
            f"pattern spec {spec!r}: expected one key per model input ({', '.join(missing)} not "
            f"found); the archive holds {keys}. Store a key named after each input, or map input "
            'names to keys in [capture] inputs = {NAME = "KEY"}'
        )
    return chosen


def load_npz(
    path: Path, choose: Callable[[list[str]], list[str]], what: str = "pattern file"
) -> list[np.ndarray]:
    """The arrays of an ``.npz`` (pickles refused) under the keys ``choose(archive keys)``
    returns; ``choose`` raises SpecError for keys that are not there."""
    if not path.is_file():
        raise PatternError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return [np.asarray(npz[k]) for k in choose(list(npz.keys()))]
    except PassageError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PatternError(f"{what} {path} cannot be read: {exc}") from exc


def pattern_keys(
    key: str | None,
    spec: str,
    names: Sequence[str] = ("input",),
    key_map: Mapping[str, str] | None = None,
) -> Callable[[list[str]], list[str]]:
    """For ``load_npz``: the archive key feeding each model input of ``names`` (``key`` from
    ``file.npz:key``; ``key_map`` from ``[capture] inputs``)."""

    def choose(keys: list[str]) -> list[str]:
        if key is not None and key not in keys:
            raise SpecError(f"pattern spec {spec!r}: no key {key!r}; the archive holds {keys}")
        return _npz_keys(keys, key, names, key_map or {}, spec)

    return choose


def array_source(patterns: Any, shapes: Sequence[tuple[int | None, ...]]) -> PatternSource:
    """Patterns given in memory (one array, or one per input)."""
    arrays = [
        np.asarray(a) for a in (patterns if isinstance(patterns, (list, tuple)) else [patterns])
    ]
    if len(arrays) == 1 and arrays[0].ndim == len(shapes[0]):
        arrays = [arrays[0][None]]  # a single pattern without its batch axis
    source = PatternSource(
        "<array>",
        int(arrays[0].shape[0]),
        [tuple(a.shape[1:]) for a in arrays],
        arrays=arrays,
        origin="array",
        kind="array",
    )
    if len(arrays) != len(shapes):
        raise PatternError(
            f"{len(arrays)} pattern array(s) given; the model has {len(shapes)} inputs"
        )
    check_shapes("<array>", source.shapes, shapes)
    if source.count == 0:
        raise PatternError("zero patterns given; expected at least one")
    return source
