"""The manifest: one typed, versioned entry per complete data file (``manifest.jsonl``).

Data files lie under ``data/``; the feature files of ``passage visualize`` under ``features/``
with a ``features.<kind>:<layer>`` key (``feature_keys``). Both are checked the same way.

A line is appended only after its file has been renamed into place, so the manifest is the
truth: a file not listed does not exist for readers. A truncated or malformed line (a crash
in the middle of an append) is ignored and reported; every other line is used.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import StoreError
from .feature_keys import FEATURE_KINDS, is_feature_path, parse_feature_key
from .json_checks import refuse

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.jsonl"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    layer: str
    epoch: int | None
    first: int
    count: int
    shape: tuple[int, ...]
    dtype: str
    min: float | None
    max: float | None
    nonfinite: int
    bytes: int
    checksum: str

    @property
    def key(self) -> tuple[int | None, str, int]:
        return (self.epoch, self.layer, self.first)

    def to_json_line(self) -> bytes:
        return orjson.dumps(asdict(self)) + b"\n"

    @classmethod
    def from_dict(cls, data: Any) -> ManifestEntry:
        """The entry of one parsed manifest line; a ``StoreError`` naming the first field whose
        JSON type or range is wrong (the line is then skipped as malformed)."""
        if not isinstance(data, dict):
            raise refuse("manifest entry", "an object", data)
        # Grouped by kind, exact types (a bool is no int): one pass of cheap tests per line.
        for name in ("path", "layer", "checksum"):
            if type(data.get(name)) is not str:
                raise _bad(name, "a string", data.get(name))
        for name in ("first", "count", "nonfinite", "bytes"):
            value = data.get(name)
            if type(value) is not int or value < 0:
                raise _bad(name, "a non-negative int", value)
        epoch = data.get("epoch")
        if epoch is not None and (type(epoch) is not int or epoch < 0):
            raise _bad("epoch", "a non-negative int or null", epoch)
        shape = data.get("shape")
        if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
            raise _bad("shape", "a list of non-negative ints", shape)
        for name in ("min", "max"):
            value = data.get(name)
            if value is not None and type(value) is not float and type(value) is not int:
                raise _bad(name, "a number or null", value)
        if type(data.get("dtype")) is not str or not _dtype_name(data["dtype"]):
            raise _bad("dtype", "a numpy dtype name such as 'float32'", data.get("dtype"))
        path = data["path"]
        inside = path.startswith("data/") or is_feature_path(path)
        if not inside or ".." in path.split("/") or "\x00" in path:
            raise _bad("path", "a path inside data/ or features/", path)
        if is_feature_path(path) and parse_feature_key(data["layer"]) is None:
            raise _bad(
                "layer", f"'features.<kind>:<layer>', kind one of {FEATURE_KINDS}", data["layer"]
            )
        return cls(
            path=path,
            layer=data["layer"],
            epoch=epoch,
            first=data["first"],
            count=data["count"],
            shape=tuple(shape),
            dtype=data["dtype"],
            min=_opt_float(data.get("min")),
            max=_opt_float(data.get("max")),
            nonfinite=data["nonfinite"],
            bytes=data["bytes"],
            checksum=data["checksum"],
        )


def _bad(name: str, expected: str, value: Any) -> StoreError:
    return refuse(f"manifest entry field {name!r}", expected, value)


@functools.lru_cache(maxsize=64)
def _dtype_name(value: str) -> bool:
    """A numpy dtype's own name, as the writer records it (``float32``)."""
    try:
        return np.dtype(value).name == value
    except (TypeError, ValueError, SyntaxError):
        return False


def _opt_float(v: float | None) -> float | None:
    return None if v is None else float(v)


@dataclass
class ManifestRead:
    entries: list[ManifestEntry]
    bad_lines: list[int]  # 1-based line numbers that were ignored


def complete_records(
    entries: Iterable[ManifestEntry], layers: Iterable[str], num_patterns: int
) -> list[int]:
    """Record keys (training epochs or steps) at which every layer's files cover all
    ``num_patterns`` patterns, sorted. A training killed in the middle of a record leaves it
    partial: some layers, or some batches of the watched patterns, missing. A file listed twice
    (written again) counts once."""
    latest = {e.key: e for e in entries if e.epoch is not None}
    covered: dict[tuple[int, str], int] = {}
    for e in latest.values():
        assert e.epoch is not None
        covered[(e.epoch, e.layer)] = covered.get((e.epoch, e.layer), 0) + e.count
    names = list(layers)
    keys = {epoch for epoch, _ in covered}
    return sorted(
        k for k in keys if all(covered.get((k, name), 0) >= num_patterns for name in names)
    )


def read_manifest(path: Path) -> ManifestRead:
    """Parse ``manifest.jsonl``; malformed lines are skipped, counted and logged."""
    entries: list[ManifestEntry] = []
    bad: list[int] = []
    if not path.exists():
        return ManifestRead(entries, bad)
    raw = path.read_bytes()
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        try:
            if not line.endswith(b"\n"):
                raise StoreError("line is not terminated (truncated write)")
            entries.append(ManifestEntry.from_dict(orjson.loads(line)))
        except (orjson.JSONDecodeError, StoreError) as exc:
            bad.append(number)
            log.warning("%s: ignoring malformed line %d: %s", path, number, exc)
    return ManifestRead(entries, bad)
