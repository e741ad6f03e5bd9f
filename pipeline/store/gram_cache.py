"""The cache of Gram matrices under ``RUN/compare/grams/`` (written by ``passage compare``).

``<kind>/<layer dir>.npy`` (batch run) or ``<kind>/<layer dir>/epoch-0000E.npy`` (training
run), square float64; ``index.json`` maps each file's name to the key of what it was computed
from (the layer's manifest entries at that epoch and the patterns). A file counts only while its
recorded key is the key of now: ``read_cached_gram`` returns None otherwise, and a comparison
computes it again. Files are written atomically; the index by one process at a time.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import ConfigError
from .atomic import atomic_write_bytes
from .grams import GRAMS_DIR, KINDS, Run, checked_patterns
from .naming import epoch_dir

log = logging.getLogger(__name__)

GRAMS_INDEX = "index.json"
_KEY_VERSION = "gram-1"  # changes when what a Gram file holds changes


def gram_index_name(kind: str, layer_dir: str, epoch: int | None) -> str:
    """The cached Gram's name in ``index.json``: its path under ``RUN/compare/grams/``."""
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(KINDS)}; received {kind!r}")
    return (
        f"{kind}/{layer_dir}.npy" if epoch is None else f"{kind}/{layer_dir}/{epoch_dir(epoch)}.npy"
    )


def gram_cache_path(run_path: str | Path, kind: str, layer_dir: str, epoch: int | None) -> Path:
    """``RUN/compare/grams/<kind>/<layer dir>.npy`` (batch run) or
    ``RUN/compare/grams/<kind>/<layer dir>/epoch-0000E.npy`` (training run)."""
    return Path(run_path) / GRAMS_DIR / gram_index_name(kind, layer_dir, epoch)


def gram_key(run: Run, layer: str, epoch: int | None, patterns: np.ndarray | None) -> str:
    """The digest of what a Gram is computed from: the layer's manifest entries at ``epoch``
    (None: the last) and the patterns (None: all the run's, the same key as their indices)."""
    ep = run.resolve_epoch(epoch)
    wanted = checked_patterns(run, patterns)
    h = hashlib.sha256()
    h.update(repr((_KEY_VERSION, layer, ep, len(wanted))).encode())
    for e in run.chunks(layer, ep):
        h.update(repr((e.path, e.checksum, e.first, e.count, e.shape, e.dtype)).encode())
    h.update(wanted.astype("<i8").tobytes())
    return h.hexdigest()[:32]


def _index_path(run_path: Path) -> Path:
    return Path(run_path) / GRAMS_DIR / GRAMS_INDEX


def read_gram_index(run_path: str | Path) -> dict[str, Any]:
    """``RUN/compare/grams/index.json`` (name -> key); empty when missing or unreadable."""
    try:
        data = orjson.loads(_index_path(Path(run_path)).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_cached_gram(
    run: Run, layer: str, epoch: int | None, kind: str, patterns: np.ndarray | None
) -> np.ndarray | None:
    """The cached Gram while its recorded key is ``gram_key(...)`` of now; else None (missing,
    stale, or unreadable: a damaged file is logged and ignored)."""
    ep = run.resolve_epoch(epoch)
    name = gram_index_name(kind, run.layer(layer).dir, ep)
    if read_gram_index(run.path).get(name) != gram_key(run, layer, ep, patterns):
        return None
    path = run.path / GRAMS_DIR / name
    n = len(checked_patterns(run, patterns))
    try:
        gram = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("ignoring the cached Gram %s (%s); computing it again", path, exc)
        return None
    if gram.shape != (n, n) or gram.dtype != np.float64:
        log.warning(
            "ignoring the cached Gram %s: %s %s, expected (%d, %d) float64",
            path,
            gram.shape,
            gram.dtype,
            n,
            n,
        )
        return None
    return gram


def write_gram_file(run_path: str | Path, name: str, gram: np.ndarray) -> Path:
    """Write one Gram to ``RUN/compare/grams/<name>`` atomically (any process: a pool worker
    writes the Gram it computed); it counts once ``record_gram`` names its key."""
    path = Path(run_path) / GRAMS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(gram, dtype=np.float64), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return path


def record_gram(run_path: str | Path, name: str, key: str) -> None:
    """Record in ``index.json`` that the Gram file ``name`` holds what ``key`` names. The
    index is read, updated and rewritten: call it from one process at a time."""
    index = read_gram_index(run_path)
    index[name] = key
    atomic_write_bytes(_index_path(Path(run_path)), orjson.dumps(index, option=orjson.OPT_INDENT_2))


def write_cached_gram(
    run: Run,
    layer: str,
    epoch: int | None,
    kind: str,
    patterns: np.ndarray | None,
    gram: np.ndarray,
) -> Path:
    """Write ``gram`` to its cache file and record its key (one process at a time)."""
    ep = run.resolve_epoch(epoch)
    name = gram_index_name(kind, run.layer(layer).dir, ep)
    path = write_gram_file(run.path, name, gram)
    record_gram(run.path, name, gram_key(run, layer, ep, patterns))
    return path
