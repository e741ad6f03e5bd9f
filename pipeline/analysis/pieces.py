"""What an analysis reads: the complete prefix of a run, and the work cut into pieces.

Pure over the run's metadata (manifest entries and run.json): no data file is opened here. A
*piece* is a few consecutive data files of one layer at one epoch (about ``PIECE_BYTES``); its
digest names exactly what it reads, so a stored partial result of a piece is reused only while
the files it came from are the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..store import ManifestEntry, Run
from ..store.stats import merge_ranges

PIECE_BYTES = 256 << 20
PIECE_ENV = "PASSAGE_PIECE_BYTES"  # overrides PIECE_BYTES (finer resume points, tests)


def piece_bytes() -> int:
    """Bytes of data per piece: ``$PASSAGE_PIECE_BYTES`` when set, else ``PIECE_BYTES``."""
    text = os.environ.get(PIECE_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else PIECE_BYTES


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def entries_digest(entries: Sequence[ManifestEntry], stop: int) -> str:
    return digest([(e.path, e.checksum, e.first, e.count) for e in entries], stop)


def covered(entries: Sequence[ManifestEntry]) -> int:
    """How many patterns from 0 the sorted ``entries`` hold without a gap."""
    end = 0
    for e in entries:
        if e.first > end:
            break
        end = max(end, e.first + e.count)
    return end


def complete_prefix(run: Run, epoch: int | None) -> int:
    """Patterns 0..P-1 that every layer of the run holds at ``epoch`` (P <= num_patterns)."""
    if not run.layers:
        return 0
    return min(min(covered(run.chunks(name, epoch)), run.num_patterns) for name in run.layers)


@dataclass(frozen=True)
class Piece:
    """Data files of one layer at one epoch, patterns ``first`` .. ``stop - 1``."""

    layer: str
    epoch: int | None
    entries: tuple[ManifestEntry, ...]
    first: int
    stop: int
    key: str  # the digest of what it reads and how (top K, labels)

    @property
    def nbytes(self) -> int:
        return sum(e.bytes for e in self.entries)


@dataclass(frozen=True)
class LayerJob:
    """One layer at one epoch over patterns 0..stop-1: its pieces and value range."""

    layer: str
    dir: str
    epoch: int | None
    shape: tuple[int, ...]
    stop: int
    lo: float | None
    hi: float | None
    pieces: tuple[Piece, ...]
    key: str


def used_entries(run: Run, layer: str, epoch: int | None, stop: int) -> list[ManifestEntry]:
    """The layer's files holding patterns below ``stop``, in pattern order."""
    return [e for e in run.chunks(layer, epoch) if e.first < stop]


def layer_job(
    run: Run, layer: str, epoch: int | None, stop: int, how: str, piece_bytes: int = PIECE_BYTES
) -> LayerJob:
    """The job of ``layer`` at ``epoch``; ``how`` digests the settings (top K, labels)."""
    entries = used_entries(run, layer, epoch, stop)
    lo, hi = merge_ranges((e.min for e in entries), (e.max for e in entries))
    pieces: list[Piece] = []
    group: list[ManifestEntry] = []
    for i, e in enumerate(entries):
        group.append(e)
        last = i == len(entries) - 1
        if last or sum(g.bytes for g in group) + entries[i + 1].bytes > piece_bytes:
            first, end = group[0].first, min(stop, group[-1].first + group[-1].count)
            key = digest(entries_digest(group, end), lo, hi, how)
            pieces.append(Piece(layer, epoch, tuple(group), first, end, key))
            group = []
    rec = run.layer(layer)
    shape = entries[0].shape if entries else tuple(v or 0 for v in rec.shape)
    key = digest(entries_digest(entries, stop), lo, hi, how)
    return LayerJob(layer, rec.dir, epoch, tuple(shape), stop, lo, hi, tuple(pieces), key)


def uniform(run: Run, layer: str, epoch: int | None) -> bool:
    """Whether every file of the layer holds patterns of one shape (an output with a free
    size, ``None`` in run.json, can change from batch to batch: such a layer is not analyzed)."""
    return len({e.shape for e in run.chunks(layer, epoch)}) <= 1


def pattern_ranges(stop: int, size: int, parts: int) -> list[tuple[int, int]]:
    """``[0, stop)`` cut into at most ``parts`` ranges whose bounds are multiples of ``size``
    (the last one ends at ``stop``)."""
    if stop <= 0:
        return []
    blocks = -(-stop // size)
    per = -(-blocks // max(1, parts))
    out = []
    for b in range(0, blocks, per):
        out.append((b * size, min(stop, (b + per) * size)))
    return out
