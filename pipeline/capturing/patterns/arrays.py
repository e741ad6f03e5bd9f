"""Patterns held in arrays: ``file.npy`` (memory-mapped, no pickles) and ``file.npz[:key]``
(one key per input for several inputs)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ...errors import PassageError, PatternError, SpecError


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


def read_npz(
    path: Path, pick: Callable[[list[str]], list[str]], what: str = "pattern file"
) -> list[np.ndarray]:
    """The arrays of an ``.npz`` (pickles refused) under the keys ``pick(available keys)``
    returns; ``pick`` raises SpecError for keys that are not there."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return [np.asarray(npz[k]) for k in pick(list(npz.keys()))]
    except PassageError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PatternError(f"{what} {path} cannot be read: {exc}") from exc


def load_npz(
    path: Path,
    key: str | None,
    spec: str,
    names: Sequence[str] = ("input",),
    key_map: Mapping[str, str] | None = None,
) -> list[np.ndarray]:
    def pick(keys: list[str]) -> list[str]:
        if key is not None and key not in keys:
            raise SpecError(f"pattern spec {spec!r}: no key {key!r}; the archive holds {keys}")
        return _npz_keys(keys, key, names, key_map or {}, spec)

    return read_npz(path, pick)
