"""``RUN/analysis/``: where analyze keeps its arrays, and how they are read back.

- ``<layer folder>.npz`` (batch run) or ``<layer folder>/epoch-E.npz`` (training run): one
  layer's statistics at one epoch (the keys of ``pipeline.analysis.reductions``);
- ``cka.npz`` or ``cka/epoch-E.npz``: the layers x layers CKA matrix (``names``, ``matrix``,
  ``method``, ``batch_size``, ``patterns``); ``cka-epochs.npz`` (training: each layer against
  the last epoch), ``cka-against.npz`` (``--against``: this run's layers x another run's);
- ``index.json``: for every file above, the digest of what it was computed from (manifest
  entries, top K, labels); a file whose digest no longer matches is computed again;
- ``.partial/``: partial results of pieces of patterns, to resume an interrupted analysis;
- pictures: ``<layer folder>.summary.png``, ``.top.png``, ``.classes.png``, ``cka*.png``.

Every file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import NotInRunError, StoreError
from .atomic import atomic_write_bytes
from .naming import epoch_dir

ANALYSIS = "analysis"
# the arrays of one layer's file (``Run.analysis``); with labels also ``classes`` and
# ``class_channel_mean``
LAYER_KEYS = (
    "mean",
    "std",
    "min",
    "max",
    "frac_positive",
    "count",
    "nonfinite",
    "channel_mean",
    "channel_std",
    "channel_frac_positive",
    "dead",
    "hist_edges",
    "hist_counts",
    "top_index",
    "top_value",
)
INDEX = "index.json"
PARTIAL = ".partial"


def folder(run_path: Path) -> Path:
    return Path(run_path) / ANALYSIS


def layer_file(layer_dir: str, epoch: int | None) -> str:
    """The path of one layer's statistics under ``analysis/``."""
    return f"{layer_dir}.npz" if epoch is None else f"{layer_dir}/{epoch_dir(epoch)}.npz"


def cka_file(epoch: int | None) -> str:
    return "cka.npz" if epoch is None else f"cka/{epoch_dir(epoch)}.npz"


def picture_name(stem: str, kind: str, epoch: int | None) -> str:
    """``001-dense.summary.png``; ``001-dense.epoch-0020.summary.png`` in a training run."""
    return f"{stem}.{kind}.png" if epoch is None else f"{stem}.{epoch_dir(epoch)}.{kind}.png"


def write_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """``arrays`` as an uncompressed ``.npz``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` written by ``write_arrays`` (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise StoreError(
            f"{path} is damaged ({exc}); delete it and run `passage analyze` again"
        ) from exc


def read_index(run_path: Path) -> dict[str, Any]:
    """``analysis/index.json`` (file -> record); empty when missing or unreadable."""
    path = folder(run_path) / INDEX
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_index(run_path: Path, index: dict[str, Any]) -> None:
    atomic_write_bytes(folder(run_path) / INDEX, orjson.dumps(index, option=orjson.OPT_INDENT_2))


def load_result(run_path: Path, rel: str, what: str) -> dict[str, np.ndarray]:
    """The arrays of ``analysis/<rel>``; ``NotInRunError`` naming ``what`` when it is missing."""
    path = folder(run_path) / rel
    try:
        return read_arrays(path)
    except FileNotFoundError:
        raise NotInRunError(
            f"no analysis of {what} in {run_path} (expected {path}); run `passage analyze "
            f"{run_path}` first"
        ) from None
