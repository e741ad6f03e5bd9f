"""``RUN/features/index.json`` (the settings of every visualized layer and epoch, written
atomically) and where the feature pictures go (``sheet_path``; pictures are not listed in the
manifest)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from ..errors import StoreError
from .atomic import atomic_write_bytes
from .feature_keys import FEATURES
from .naming import epoch_dir

log = logging.getLogger(__name__)

INDEX = "index.json"
SETTINGS_VERSION = 1
SHEET_KINDS = {"sheet": "png", "top": "top.png"}


def sheet_path(
    run_path: str | Path, layer_dir: str, epoch: int | None, kind: str = "sheet"
) -> Path:
    """``RUN/features/<layer dir>[.epoch-E].png`` (``kind`` "sheet") or ``.top.png`` ("top")."""
    if kind not in SHEET_KINDS:
        raise StoreError(f"picture kind: expected one of {list(SHEET_KINDS)}, received {kind!r}")
    stem = layer_dir if epoch is None else f"{layer_dir}.{epoch_dir(epoch)}"
    return Path(run_path) / FEATURES / f"{stem}.{SHEET_KINDS[kind]}"


# -- settings ---------------------------------------------------------------------------------
def _epoch_name(epoch: int | None) -> str:
    return "batch" if epoch is None else str(int(epoch))


def read_settings(run_path: str | Path) -> dict[str, Any]:
    """The whole settings index, ``{layer: {"<epoch>"|"batch": settings}}``; ``{}`` when there
    is none (an unreadable one is logged and read as empty)."""
    path = Path(run_path) / FEATURES / INDEX
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("%s is unreadable (%s); read as no settings", path, exc)
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        log.warning("%s: expected an object of objects; read as no settings", path)
        return {}
    return data


def layer_settings(run_path: str | Path, layer: str, epoch: int | None) -> dict[str, Any] | None:
    """The settings ``layer`` was visualized with at ``epoch``; None when it was not."""
    found = read_settings(run_path).get(layer, {}).get(_epoch_name(epoch))
    return found if isinstance(found, dict) else None


def write_settings(
    run_path: str | Path, layer: str, epoch: int | None, settings: dict[str, Any] | None
) -> None:
    """Record (or with None remove) the settings of (``layer``, ``epoch``), atomically."""
    index = read_settings(run_path)
    records = index.setdefault(layer, {})
    if settings is None:
        records.pop(_epoch_name(epoch), None)
        if not records:
            index.pop(layer)
    else:
        records[_epoch_name(epoch)] = dict(settings)
    folder = Path(run_path) / FEATURES
    folder.mkdir(parents=True, exist_ok=True)
    text = orjson.dumps(index, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    atomic_write_bytes(folder / INDEX, text)
