"""``RUN/compare/``: where compare keeps its results, and how they are read back.

- ``NAME/comparison.npz``: one comparison's arrays (``Run.comparison(NAME)``, keys in
  ``COMPARISON_KEYS``); strings are stored as numpy unicode arrays;
- ``NAME/references.npy``: the reference RDMs (S, N, N) float64, in condition order;
- ``NAME/info.json``: what it was computed from: sources, conditions (run pattern indices),
  labels, bootstrap samples, seed, region, kind (``rsa``, ``encoding`` or ``both``);
- ``NAME/*.png``: its pictures (``profile``, ``epochs``, ``rdms``, ``mds``);
- ``regions.npz`` (+ ``regions.png``): regions x layers, from a command that named each
  reference after a brain region (``Run.regions()``);
- ``grams/``: the model Gram matrices every comparison starts from (``store.grams``), with their
  ``index.json``: computing them is the long part, so a comparison resumes from them.

Every file is written under a temporary name and renamed into place; a comparison's folder is
complete when its ``comparison.npz`` exists (written last).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import NotInRunError, StoreError
from .analysis_files import read_arrays, write_arrays
from .atomic import TMP_MARK, atomic_write_bytes
from .naming import is_safe_dir

COMPARE = "compare"
GRAMS = "grams"
COMPARISON = "comparison.npz"
REFERENCES = "references.npy"
INFO = "info.json"
REGIONS = "regions.npz"
# Run.comparison's keys, in this order; "epochs" only for training runs, the encoding keys only
# with responses, "reliability" and "encoding_normalized" only when responses have repeats
COMPARISON_KEYS = (
    "layers",
    "references",
    "method",
    "distance",
    "epochs",
    "scores",
    "score",
    "noise_ceiling",
    "ci",
    "best_layer",
    "best_layer_p",
    "encoding",
    "encoding_median",
    "reliability",
    "encoding_normalized",
)
REGION_KEYS = (
    "regions",
    "layers",
    "epochs",
    "scores",
    "ci",
    "best_layer",
    "best_layer_p",
    "named_layer",
    "agrees",
)
_STRINGS = ("layers", "references", "regions", "named_layer")
_ONE_STRING = ("method", "distance")


def folder(run_path: str | Path) -> Path:
    return Path(run_path) / COMPARE


def check_name(name: str) -> str:
    """A comparison's name is one plain folder name; ``grams`` is the Gram cache's."""
    if not is_safe_dir(name) or name == GRAMS:
        raise StoreError(
            f"name: expected a comparison name of letters, digits, '_' and '-' (not {GRAMS!r}), "
            f"received {name!r}; pick another with --name"
        )
    return name


def remove_temporaries(run_path: str | Path) -> int:
    """Remove what a killed comparison left half-written under ``RUN/compare/`` (files under
    a temporary name); the caller holds the run's lock, so no other writer is there. Returns
    how many were removed."""
    root = folder(run_path)
    if not root.is_dir():
        return 0
    stale = [p for p in root.rglob(f"*{TMP_MARK}*") if p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def comparison_dir(run_path: str | Path, name: str) -> Path:
    return folder(run_path) / check_name(name)


def names(run_path: str | Path) -> list[str]:
    """The complete comparisons of a run, sorted by name."""
    root = folder(run_path)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and is_safe_dir(p.name) and (p / COMPARISON).is_file()
    )


def write_comparison(
    run_path: str | Path,
    name: str,
    arrays: Mapping[str, Any],
    references: np.ndarray,
    info: Mapping[str, Any],
) -> Path:
    """Write one comparison; ``comparison.npz`` goes last, so the folder counts only when
    everything in it is there."""
    unknown = sorted(set(arrays) - set(COMPARISON_KEYS))
    if unknown:
        raise StoreError(f"a comparison holds the keys {COMPARISON_KEYS}; received also {unknown}")
    out = comparison_dir(run_path, name)
    out.mkdir(parents=True, exist_ok=True)
    _write_npy(out / REFERENCES, np.asarray(references, dtype=np.float64))
    atomic_write_bytes(out / INFO, orjson.dumps(dict(info), option=orjson.OPT_INDENT_2))
    write_arrays(out / COMPARISON, {k: arrays[k] for k in COMPARISON_KEYS if k in arrays})
    return out


def _write_npy(path: Path, array: np.ndarray) -> None:
    data = io.BytesIO()
    np.lib.format.write_array(data, array, allow_pickle=False)
    atomic_write_bytes(path, data.getvalue())


def _missing(run_path: str | Path, name: str, path: Path) -> NotInRunError:
    have = names(run_path)
    known = f"its comparisons: {', '.join(have)}" if have else "it has no comparison yet"
    return NotInRunError(
        f"no comparison {name!r} in {run_path} (expected {path}); {known}; run `passage "
        f"compare {run_path} --rdms FILE --name {name}` first"
    )


def _plain(key: str, value: np.ndarray) -> Any:
    if key in _ONE_STRING:
        return str(value)
    if key in _STRINGS:
        return [str(v) for v in value.reshape(-1)]
    if key == "epochs":
        return [int(v) for v in value]
    if key == "noise_ceiling":
        return (float(value[0]), float(value[1]))
    if key == "best_layer":
        return str(value) if value.ndim == 0 else [str(v) for v in value]
    if key == "best_layer_p" and value.ndim == 0:
        return float(value)
    return value


def read_comparison(run_path: str | Path, name: str) -> dict[str, Any]:
    """``Run.comparison(name)``: the keys of ``COMPARISON_KEYS`` the comparison holds."""
    path = comparison_dir(run_path, name) / COMPARISON
    try:
        data = read_arrays(path)
    except FileNotFoundError:
        raise _missing(run_path, name, path) from None
    return {k: _plain(k, data[k]) for k in COMPARISON_KEYS if k in data}


def read_info(run_path: str | Path, name: str) -> dict[str, Any]:
    path = comparison_dir(run_path, name) / INFO
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise _missing(run_path, name, path) from None
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"{path} is damaged ({exc}); run `passage compare` again") from exc
    return data if isinstance(data, dict) else {}


def read_references(run_path: str | Path, name: str) -> np.ndarray:
    """The comparison's reference RDMs, (S, N, N) float64 (memory-mapped)."""
    path = comparison_dir(run_path, name) / REFERENCES
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise _missing(run_path, name, path) from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is damaged ({exc}); run `passage compare` again") from exc


def write_regions(run_path: str | Path, arrays: Mapping[str, Any]) -> Path:
    path = folder(run_path) / REGIONS
    write_arrays(path, {k: arrays[k] for k in REGION_KEYS if k in arrays})
    return path


def read_regions(run_path: str | Path) -> dict[str, Any]:
    """``Run.regions()``: regions x layers from the last command that named its references
    after brain regions."""
    path = folder(run_path) / REGIONS
    try:
        data = read_arrays(path)
    except FileNotFoundError:
        raise NotInRunError(
            f"no regions comparison in {run_path} (expected {path}); run `passage compare "
            f"{run_path} --rdms V1=v1.mat --rdms IT=it.h5` first"
        ) from None
    out: dict[str, Any] = {}
    for key in REGION_KEYS:
        if key not in data:
            continue
        value = data[key]
        if key in _STRINGS or key == "best_layer":
            out[key] = np.asarray(value).astype(str).tolist()
        elif key == "epochs":
            out[key] = [int(v) for v in value]
        else:
            out[key] = value
    return out
