"""The manifest: one typed, versioned entry per complete data file (``manifest.jsonl``).

A line is appended only after its file has been renamed into place, so the manifest is the
truth: a file not listed does not exist for readers. A truncated or malformed line (a crash
in the middle of an append) is ignored and reported; every other line is used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import StoreError

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

    _TYPES = {
        "path": str,
        "layer": str,
        "first": int,
        "count": int,
        "dtype": str,
        "nonfinite": int,
        "bytes": int,
        "checksum": str,
    }

    @property
    def key(self) -> tuple[int | None, str, int]:
        return (self.epoch, self.layer, self.first)

    def to_json_line(self) -> bytes:
        return orjson.dumps(asdict(self)) + b"\n"

    @classmethod
    def from_dict(cls, data: Any) -> ManifestEntry:
        if not isinstance(data, dict):
            raise StoreError(f"manifest entry: expected an object, received {data!r}")
        for name, tp in cls._TYPES.items():
            value = data.get(name)
            if not isinstance(value, tp) or isinstance(value, bool):
                raise StoreError(
                    f"manifest entry field {name!r}: expected {tp.__name__}, received {value!r}"
                )
        epoch = data.get("epoch")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
            raise StoreError(f"manifest entry field 'epoch': expected int or null, got {epoch!r}")
        shape = data.get("shape")
        if not isinstance(shape, list) or not all(isinstance(v, int) for v in shape):
            raise StoreError(
                f"manifest entry field 'shape': expected a list of ints, got {shape!r}"
            )
        path = data["path"]
        if path.startswith("/") or ".." in Path(path).parts or not path.startswith("data/"):
            raise StoreError(f"manifest entry field 'path': expected data/..., received {path!r}")
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


def _opt_float(v: Any) -> float | None:
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
