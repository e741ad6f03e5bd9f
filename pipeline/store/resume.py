"""What a run folder already holds, for a writer that resumes it: the manifest's entries
whose files are still there with their size. Malformed lines and entries of missing or resized
files are dropped from the manifest (rewritten whole), so that their files are written again."""

from __future__ import annotations

import logging
from pathlib import Path

from .atomic import atomic_write_bytes
from .manifest import MANIFEST, ManifestEntry, read_manifest

log = logging.getLogger(__name__)

Key = tuple[int | None, str, int]  # (epoch, layer, first), as ManifestEntry.key


def resume(root: Path) -> dict[Key, ManifestEntry]:
    """The complete files of the run in ``root`` by key (none in a new run); the manifest is
    rewritten without what was dropped."""
    read = read_manifest(root / MANIFEST)
    if read.bad_lines:
        log.warning(
            "%s: dropping %d malformed manifest line(s) %s before appending",
            root / MANIFEST,
            len(read.bad_lines),
            read.bad_lines,
        )
    entries, lost = present(root, read.entries)
    if lost:
        log.warning(
            "%s: %d listed file(s) are missing or have the wrong size (%s%s); they will be "
            "captured again",
            root,
            len(lost),
            ", ".join(e.path for e in lost[:3]),
            ", ..." if len(lost) > 3 else "",
        )
    if read.bad_lines or lost:
        atomic_write_bytes(root / MANIFEST, b"".join(e.to_json_line() for e in entries))
    done = {e.key: e for e in entries}
    if done:
        log.info("resuming %s: %d file(s) already complete", root, len(done))
    return done


def present(
    root: Path, entries: list[ManifestEntry]
) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """Split manifest entries into (file present with its size, missing or resized).

    One ``stat`` per file: cheap enough for every resume. A file of the right size but
    wrong content is found by ``passage verify``; delete it and it is captured again.
    """
    kept: list[ManifestEntry] = []
    lost: list[ManifestEntry] = []
    latest = {e.key: e for e in entries}
    for e in latest.values():
        try:
            ok = (root / e.path).stat().st_size == e.bytes
        except OSError:
            ok = False
        (kept if ok else lost).append(e)
    if len(kept) == len(entries):
        return entries, []
    return kept, lost
