"""``RUN/features/``: the files of ``passage visualize``, written like the data files.

- ``features/<layer dir>/[epoch-E/]<kind>-c<first:06d>.npy``: one file per kind
  (``FEATURE_KINDS``) and batch of channels ``[first, first + count)``, listed in the manifest
  (``feature_keys``); written under a temporary name, renamed, then its line appended;
- ``features/index.json``: the settings of every visualized (layer, epoch), written atomically;
- ``features/<layer dir>[.epoch-E].png`` and ``.top.png``: pictures (not listed).

``FeatureWriter`` writes the files (its caller holds the run lock), ``done`` says which
batches a rerun can skip, ``drop_features`` removes one (layer, epoch) for ``--overwrite``,
``remove_temporaries`` cleans what a killed writer left. Reading is ``features_reader``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from ..errors import NotInRunError, StoreError
from . import codecs
from .atomic import TMP_MARK, atomic_write_bytes, disk_error, remove_temporary, temporary
from .crc import crc32
from .feature_keys import (
    ATTRIBUTION_KINDS,
    FEATURE_KINDS,
    FEATURES,
    KIND_DTYPES,
    feature_key,
    feature_path,
    is_feature_path,
    parse_feature_key,
)
from .feature_settings import (
    INDEX,
    SETTINGS_VERSION,
    SHEET_KINDS,
    layer_settings,
    read_settings,
    sheet_path,
    write_settings,
)
from .jsonl import LineFile
from .manifest import MANIFEST, RUN_JSON, ManifestEntry, read_manifest
from .runinfo import LayerRecord, read_run_json
from .stats import array_stats

log = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTION_KINDS",
    "FEATURES",
    "FEATURE_KINDS",
    "INDEX",
    "SETTINGS_VERSION",
    "FeatureWriter",
    "drop_features",
    "feature_key",
    "feature_path",
    "layer_settings",
    "parse_feature_key",
    "read_settings",
    "remove_temporaries",
    "sheet_path",
    "write_settings",
]


# -- writing ----------------------------------------------------------------------------------
def _layer_records(run_path: Path) -> dict[str, LayerRecord]:
    info = read_run_json(run_path / RUN_JSON)
    return {rec.name: rec for rec in (LayerRecord.from_dict(d) for d in info.get("layers", []))}


def _record(records: dict[str, LayerRecord], layer: str, run_path: Path) -> LayerRecord:
    try:
        return records[layer]
    except KeyError:
        raise NotInRunError(
            f"layer {layer!r} is not in run {run_path}; expected one of: {', '.join(records)}"
        ) from None


def check_batch(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` (kind -> (count, *per-channel shape)) checked and converted to the stored
    dtypes, in ``FEATURE_KINDS`` order; a ``StoreError`` saying what does not fit."""
    unknown = sorted(set(arrays) - set(FEATURE_KINDS))
    if unknown or not arrays:
        raise StoreError(
            f"feature arrays: expected kinds among {list(FEATURE_KINDS)}, received "
            f"{unknown or 'none'}"
        )
    out: dict[str, np.ndarray] = {}
    for kind in FEATURE_KINDS:
        if kind not in arrays:
            continue
        arr = np.asarray(arrays[kind])
        want = KIND_DTYPES[kind]
        if want.kind == "i" and arr.dtype.kind not in "iu":
            raise StoreError(f"feature {kind}: expected integers, received dtype {arr.dtype}")
        out[kind] = np.ascontiguousarray(arr, dtype=want)
    counts = {kind: arr.shape[0] if arr.ndim else None for kind, arr in out.items()}
    if len(set(counts.values())) != 1 or None in counts.values() or 0 in counts.values():
        raise StoreError(
            f"feature arrays: expected one channel count >= 1 for all, received {counts}"
        )
    ranks = {"activation": 1, "top_index": 2, "top_value": 2}
    for kind, rank in ranks.items():
        if kind in out and out[kind].ndim != rank:
            raise StoreError(
                f"feature {kind}: expected shape {'(count,)' if rank == 1 else '(count, K)'}, "
                f"received {out[kind].shape}"
            )
    for kind in ("attribution", "top_input"):
        if kind in out and out[kind].ndim < 2:
            raise StoreError(
                f"feature {kind}: expected (count, K, *input shape), received {out[kind].shape}"
            )
    tops = {kind: out[kind].shape[1] for kind in ATTRIBUTION_KINDS if kind in out}
    if len(set(tops.values())) > 1:
        raise StoreError(f"feature arrays: expected one number K of top patterns, received {tops}")
    spaces = {kind: out[kind].shape[2:] for kind in ("attribution", "top_input") if kind in out}
    if "image" in out:
        spaces["image"] = out["image"].shape[1:]
    if len(set(spaces.values())) > 1:
        raise StoreError(
            f"feature arrays: expected one input shape for images, inputs and attributions, "
            f"received {spaces}"
        )
    return out


class FeatureWriter:
    """Writes feature files into the run at ``run_path`` (its caller holds ``RunLock``): each
    file under a temporary name, renamed, then its manifest line appended."""

    def __init__(self, run_path: str | Path, durable: bool = False) -> None:
        self.root = Path(run_path)
        self.durable = durable
        self.records = _layer_records(self.root)
        self.manifest = LineFile(self.root / MANIFEST, durable)

    def _open(self) -> None:
        if self.manifest.opened:
            return
        path = self.manifest.path
        with contextlib.suppress(FileNotFoundError):
            raw = path.read_bytes()
            if raw and not raw.endswith(b"\n"):  # a killed append: drop its partial line
                log.warning("%s: dropping an unterminated last line before appending", path)
                atomic_write_bytes(path, raw[: raw.rfind(b"\n") + 1])
        self.manifest.open()

    def close(self) -> None:
        self.manifest.close()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(
        self, layer: str, epoch: int | None, first: int, arrays: dict[str, np.ndarray]
    ) -> list[ManifestEntry]:
        """Write channels ``[first, first + count)`` of ``layer`` at ``epoch``: one file per
        kind in ``arrays`` (kind -> (count, *per-channel shape)), in ``FEATURE_KINDS`` order;
        their manifest entries."""
        rec = _record(self.records, layer, self.root)
        if int(first) < 0:
            raise StoreError(f"feature batch: expected a first channel >= 0, received {first}")
        checked = check_batch(arrays)
        self._open()
        entries = []
        for kind, arr in checked.items():
            rel = feature_path(rec.dir, epoch, kind, first)
            entry = self._write_file(rel, feature_key(kind, layer), epoch, int(first), arr)
            self.manifest.append(entry.to_json_line())
            entries.append(entry)
        return entries

    def _write_file(
        self, rel: str, key: str, epoch: int | None, first: int, arr: np.ndarray
    ) -> ManifestEntry:
        final = self.root / rel
        tmp = temporary(final)
        head = codecs.npy_header(arr.dtype, arr.shape)
        crc = crc32(arr, crc32(head))
        lo, hi, bad = array_stats(arr)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(head)
                fh.write(arr.reshape(-1).view(np.uint8).data)
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            remove_temporary(tmp)
            raise disk_error(exc, final) from exc
        return ManifestEntry(
            path=rel,
            layer=key,
            epoch=epoch,
            first=first,
            count=int(arr.shape[0]),
            shape=tuple(int(v) for v in arr.shape[1:]),
            dtype=arr.dtype.name,
            min=lo,
            max=hi,
            nonfinite=bad,
            bytes=len(head) + arr.nbytes,
            checksum=codecs.format_checksum(crc),
        )

    def done(self, layer: str, epoch: int | None) -> dict[str, set[int]]:
        """Kind -> first channels of the files of ``layer`` at ``epoch`` that the manifest lists
        (its last line per file) and that are present with their size."""
        out: dict[str, set[int]] = {kind: set() for kind in FEATURE_KINDS}
        for kind, entry in self._present(layer, epoch):
            out[kind].add(entry.first)
        return out

    def covered(self, layer: str, epoch: int | None) -> dict[str, set[int]]:
        """Kind -> the channels those files hold: what a rerun, or a call asking for more
        channels, leaves as it is."""
        out: dict[str, set[int]] = {kind: set() for kind in FEATURE_KINDS}
        for kind, entry in self._present(layer, epoch):
            out[kind].update(range(entry.first, entry.first + entry.count))
        return out

    def _present(self, layer: str, epoch: int | None) -> Iterator[tuple[str, ManifestEntry]]:
        for entry in _latest(self.root):
            parsed = parse_feature_key(entry.layer)
            if parsed is None or parsed[1] != layer or entry.epoch != epoch:
                continue
            try:
                present = (self.root / entry.path).stat().st_size == entry.bytes
            except OSError:
                present = False
            if present:
                yield parsed[0], entry


def _latest(root: Path) -> list[ManifestEntry]:
    """The feature entries of the manifest, the last line of each key."""
    latest = {e.key: e for e in read_manifest(root / MANIFEST).entries if is_feature_path(e.path)}
    return list(latest.values())


# -- removing ---------------------------------------------------------------------------------
def drop_features(run_path: str | Path, layer: str, epoch: int | None) -> int:
    """Remove everything visualized of ``layer`` at ``epoch`` (``--overwrite``; the caller holds
    the run lock): the manifest is rewritten atomically without those lines (other lines kept
    as they are, an unterminated last line dropped), then their files, pictures and stray
    files of that folder are deleted and the settings record removed. Files removed."""
    root = Path(run_path)
    rec = _record(_layer_records(root), layer, root)
    manifest = root / MANIFEST
    raw = manifest.read_bytes() if manifest.exists() else b""
    kept: list[bytes] = []
    dropped = False
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            continue
        try:
            entry = ManifestEntry.from_dict(orjson.loads(line))
        except (orjson.JSONDecodeError, StoreError):
            kept.append(line)  # malformed but whole: left for `passage verify` to report
            continue
        parsed = parse_feature_key(entry.layer) if is_feature_path(entry.path) else None
        if parsed is not None and parsed[1] == layer and entry.epoch == epoch:
            dropped = True
            continue
        kept.append(line)
    if dropped or (raw and not raw.endswith(b"\n")):
        atomic_write_bytes(manifest, b"".join(kept))
    folder = root / feature_path(rec.dir, epoch, FEATURE_KINDS[0], 0)
    removed = 0
    candidates = list(folder.parent.glob("*.npy*")) if folder.parent.is_dir() else []
    candidates += [sheet_path(root, rec.dir, epoch, kind) for kind in SHEET_KINDS]
    for path in candidates:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise disk_error(exc, path) from exc
    if epoch is not None:
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the epoch folder, when nothing else is in it
    if layer_settings(root, layer, epoch) is not None:
        write_settings(root, layer, epoch, None)
    return removed


def remove_temporaries(run_path: str | Path) -> int:
    """Delete the temporary files a killed writer left under ``features/`` (the caller holds
    the run lock, so no live writer owns them); how many."""
    folder = Path(run_path) / FEATURES
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.rglob(f"*{TMP_MARK}*"):
        if path.is_file():
            path.unlink()
            removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) of an interrupted write", folder, removed)
    return removed
