"""``run.json``: the run's description, read and checked in one place.

Every field a reader uses is checked for its JSON type (and range) here, so a damaged or
hand-edited run.json is one ``StoreError`` line naming the field, never a ``TypeError`` deep in
a renderer. Fields nobody reads (``config``, ``versions``, ...) and fields that are only printed
(``model``, ``patterns``) may hold anything. A missing field keeps its default.

``read_run_json(path)`` is the strict read of ``open_run``; ``lenient=True`` is the read of a
writer deciding whether a folder holds its own run: a missing file is ``None``, a damaged one
an empty description, which matches no run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import orjson

from ..errors import StoreError
from .codecs import FORMATS
from .json_checks import is_int, refuse, short
from .manifest import RUN_JSON, SCHEMA_VERSION
from .naming import input_key

log = logging.getLogger(__name__)

MODES = ("batch", "train")
TIME_UNITS = ("epoch", "step")
AGAIN = "restore run.json, or capture the run again with --overwrite"


def _field(field: str, expected: str, value: Any) -> StoreError:
    return refuse(f"field {field!r}", expected, value)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _record(d: Any, where: str, what: str, strings: tuple[str, ...]) -> tuple[int | None, ...]:
    """Check a run.json record: an object with a non-negative ``index``, the ``strings`` keys as
    strings and a per-pattern ``shape`` (non-negative ints, None for a free size); its shape."""
    if not isinstance(d, dict):
        raise _field(where, what, d)
    if not is_int(d.get("index")):
        raise _field(f"{where}.index", "a non-negative int", d.get("index"))
    for key in strings:
        if not isinstance(d.get(key), str):
            raise _field(f"{where}.{key}", "a string", d.get(key))
    shape = d.get("shape")
    if not isinstance(shape, list) or not all(v is None or is_int(v) for v in shape):
        raise _field(f"{where}.shape", "a list of non-negative ints or nulls", shape)
    return tuple(shape)


@dataclass(frozen=True)
class LayerRecord:
    """A selected layer as run.json records it (``shape`` may hold None for a free size)."""

    index: int
    name: str
    class_name: str
    shape: tuple[int | None, ...]
    dir: str

    @classmethod
    def from_dict(cls, d: Any, where: str = "layers[]") -> LayerRecord:
        shape = _record(d, where, "a layer record object", ("name", "class", "dir"))
        return cls(d["index"], d["name"], d["class"], shape, d["dir"])


@dataclass(frozen=True)
class InputRecord:
    """A model input stored with the run (``--keep-inputs``), as run.json's ``stored_inputs``
    records it: its position among the model's inputs, name, per-pattern ``shape`` (None for a
    free size), the dtype its files hold and its data folder under ``data/inputs/<epoch>/``."""

    index: int
    name: str
    shape: tuple[int | None, ...]
    dtype: str
    dir: str

    @property
    def key(self) -> str:
        """The name its manifest entries carry (``input:<name>``)."""
        return input_key(self.name)

    @classmethod
    def from_dict(cls, d: Any, where: str = "stored_inputs[]") -> InputRecord:
        shape = _record(d, where, "an input record object", ("name", "dtype", "dir"))
        return cls(d["index"], d["name"], shape, d["dtype"], d["dir"])


def _check_inputs(value: Any, info: dict[str, Any]) -> None:
    if not isinstance(value, list):
        raise _field("stored_inputs", "a list of input records", value)
    records = [InputRecord.from_dict(d, f"stored_inputs[{i}]") for i, d in enumerate(value)]
    keys = [rec.key for rec in records]
    layers = info.get("layers")
    names = (
        {d.get("name") for d in layers if isinstance(d, dict)}
        if isinstance(layers, list)
        else set()
    )
    clash = sorted(set(keys) & names) or sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        raise _field("stored_inputs", "input names unique and apart from the layer names", clash)


def _check_layers(value: Any) -> None:
    if not isinstance(value, list):
        raise _field("layers", "a list of layer records", value)
    for i, d in enumerate(value):
        LayerRecord.from_dict(d, f"layers[{i}]")


def _check_sources(value: Any, info: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _field("sources", "an object or null", value)
    names = value.get("names")
    if names is not None:
        if not _str_list(names):
            raise _field("sources.names", "a list of strings or null", names)
        count = info.get("num_patterns", 0)
        if len(names) != count:
            raise _field("sources.names", f"{count} name(s), one per pattern", names)
    if not isinstance(value.get("origin", ""), str):
        raise _field("sources.origin", "a string", value.get("origin"))


def _check_time(value: Any, info: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _field("time", "an object or null", value)
    if value.get("unit", "epoch") not in TIME_UNITS:
        raise _field("time.unit", f"one of {TIME_UNITS}", value.get("unit"))


def _check_watch(value: Any, info: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _field("watch", "an object or null", value)
    for key in ("labels", "class_names"):
        if not isinstance(value.get(key) or [], list):
            raise _field(f"watch.{key}", "a list or null", value.get(key))


def _simple(test: Callable[[Any], bool], expected: str) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if not test(value):
            raise _field(field, expected, value)

    return check


# field -> check(field, value) of the fields readers use; a missing field is not checked.
_SIMPLE: dict[str, Callable[[str, Any], None]] = {
    "format": _simple(lambda v: v in FORMATS, f"one of {FORMATS}"),
    "dtype": _simple(lambda v: isinstance(v, str), "a string"),
    "mode": _simple(lambda v: v in MODES, f"one of {MODES}"),
    "num_patterns": _simple(is_int, "a non-negative int"),
    "batch_size": _simple(lambda v: is_int(v, 1), "a positive int"),
    "fingerprint": _simple(lambda v: isinstance(v, str), "a string"),
    "pattern_origin": _simple(lambda v: isinstance(v, str), "a string"),
    "layers": lambda _field, v: _check_layers(v),
}
# field -> check(value, whole description), for fields whose check needs other fields
_NESTED: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "sources": _check_sources,
    "time": _check_time,
    "watch": _check_watch,
    "stored_inputs": _check_inputs,
}


def check_run_info(info: Any) -> dict[str, Any]:
    """``info`` when it is a run description whose used fields hold the right JSON types;
    otherwise a ``StoreError`` naming the first bad field, what was expected and received."""
    if not isinstance(info, dict):
        raise StoreError(f"expected a JSON object, received {short(info)}")
    for field, check in _SIMPLE.items():
        if field in info:
            check(field, info[field])
    for field, nested in _NESTED.items():
        if field in info:
            nested(info[field], info)
    return info


@overload
def read_run_json(path: Path, lenient: Literal[False] = False) -> dict[str, Any]: ...


@overload
def read_run_json(path: Path, lenient: bool) -> dict[str, Any] | None: ...


def read_run_json(path: Path, lenient: bool = False) -> dict[str, Any] | None:
    """The checked description in ``path`` (a run's ``run.json``).

    Strict (``open_run``): a missing, unreadable or damaged file, or another schema version,
    is a ``StoreError`` of one line. ``lenient`` (a writer looking at its ``--out`` folder):
    ``None`` when there is no file, ``{}`` (a description that matches no run) when it is
    unreadable or damaged; the schema version is not checked.
    """
    if not path.is_file():
        if lenient and not path.exists():
            return None
        if lenient:
            return {}
        raise StoreError(
            f"{path.parent} is not a Passage run (no {RUN_JSON}); expected the --out folder "
            "of a `passage capture`"
        )
    try:
        info = check_run_info(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, StoreError) as exc:
        if lenient:
            log.debug("%s is unreadable or damaged (%s): it holds no run to resume", path, exc)
            return {}
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(f"{path} is damaged: {text}; {AGAIN}") from exc
    version = info.get("schema_version")
    if not lenient and (not is_int(version) or version != SCHEMA_VERSION):
        raise StoreError(
            f"{path}: expected schema_version {SCHEMA_VERSION}, received "
            f"{short(version)}; capture the run again with this version of "
            "Passage"
        )
    return info
