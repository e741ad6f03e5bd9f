"""Model Gram matrices and RDMs streamed from a run's files (numpy only, no TensorFlow).

A layer's representational dissimilarity matrix (RDM) over n patterns needs only the n x n
Gram matrix of its rows (each pattern's output flattened), suitably transformed first
(``gram_kind``): ``layer_gram`` computes it from the layer's files with memory bounded by the
Gram itself plus a panel of ``budget`` bytes, and ``rdm_from_gram`` turns it into the RDM as
rsatoolbox's ``calc_rdm`` defines it.

Streaming. The files of a layer hold consecutive patterns. The rows wanted (``patterns``) are
read into a *panel* of consecutive files of at most ``budget`` bytes (in the product's dtype;
at least one file), the panel is multiplied with itself (upper tiles only), then every later
file, gathered in *stripes* of at most ``budget // 8`` bytes (at least one file; the panel then
gets the other 7/8), is multiplied with the panel; the next panel starts after the last. A
layer whose wanted rows fit ``budget`` is read once and multiplied once (tile by tile), with no
stripes. Memory: the n x n float64 Gram, the panel and a stripe (``budget`` together, or one
file each when a single file is larger), one file in transit (memory-mapped NPY, or decoded
JSON) and a min(n, T)^2 tile of products (T = ``TILE_ROWS``; at most the Gram's own bytes:
one product per panel up to 8,192 patterns, the BLAS limit). The default budget is 256 MiB or
twice the Gram's bytes, whichever is more (``gram_budget``); ``$PASSAGE_GRAM_BYTES`` overrides
it (tests use it to force several panels).

Precision. Layers of fewer than ``FLOAT32_FEATURES`` features are multiplied in float64
(errors ~1e-16 relative). Wider layers are multiplied in float32 (the BLAS limit), a tile's
rows over all their features in one product (over ``FLOAT32_BLOCK`` features at a time for
wider layers), each product added into the float64 Gram. With u = 2**-24 and B = min(features,
``FLOAT32_BLOCK``), every entry obeys |G'_ij - G_ij| <= c ||a_i|| ||a_j||, c = (B + 2) u
(B terms summed in float32, plus rounding the transformed rows a_i, computed in float64, to
float32; the float64 sums across blocks add ~features/B * 2**-53). Hence, to first order in c:

- correlation and cosine distances: |error| <= 2c (6e-4 for 5,000 features); rounding errors
  of random sign give far less: ~1e-8 measured for 1,000 patterns of 30,000 features;
- euclidean: |error| <= c (||a_i|| + ||a_j||)**2 / features, where a are the rows minus the
  reference vector (which keeps the norms near the data's spread, not its offset).

Non-finite values. A pattern holding NaN or Inf (the manifest's ``nonfinite`` count says
which files to look in) is zeroed before the products (so it cannot spoil the reference
vector) and its Gram row and column are NaN; so is a row whose float32 products overflowed.
The caller reports them (``np.isnan(np.diag(gram))``).

Cache. ``passage compare`` keeps Grams under ``RUN/compare/grams/`` (``gram_cache``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError, NotInRunError, ShapeError, StoreError
from .manifest import ManifestEntry


class Run(Protocol):
    """What the Gram streaming reads of a run (``store.reader.Run``): its layers' manifest
    entries and files. A protocol, so that ``Run.rdm`` can use this module without a cycle."""

    path: Path

    @property
    def num_patterns(self) -> int: ...

    def resolve_epoch(self, epoch: int | None) -> int | None: ...

    def chunks(self, layer: str, epoch: int | None = None) -> list[ManifestEntry]: ...

    def load(self, entry: ManifestEntry, mmap: bool = True, check: bool = False) -> np.ndarray: ...

    def layer(self, name: str) -> Any: ...


log = logging.getLogger(__name__)

DISTANCES = ("correlation", "euclidean", "cosine")
KINDS = ("centered", "raw", "shifted")
_KIND_OF = {"correlation": "centered", "cosine": "raw", "euclidean": "shifted"}

FLOAT32_FEATURES = 2048  # layers this wide or wider: float32 products
FLOAT32_BLOCK = 1 << 16  # features summed by one float32 product (bounds its rounding error)
TILE_ROWS = 8192  # rows of a tile: products T x T at a time (one product up to 8,192 patterns)
DEFAULT_BUDGET = 256 << 20  # bytes of rows held in memory (panel + stripe), at least
GRAM_SHARE = 2  # ... or this many times the Gram's own bytes, when that is more
MAX_BUDGET = 2 << 30
BUDGET_ENV = "PASSAGE_GRAM_BYTES"
STRIPE_SHARE = 8  # when a layer does not fit: stripes of budget // 8, panels of the rest

GRAMS_DIR = "compare/grams"


def gram_kind(distance: str) -> str:
    """The Gram a distance is computed from: "correlation" -> "centered" (each pattern minus its
    own mean over features), "cosine" -> "raw", "euclidean" -> "shifted" (minus one reference
    vector, the mean of the first panel's patterns: distances and centered kernels do not
    change, and float32 products stay accurate for data far from the origin)."""
    try:
        return _KIND_OF[distance]
    except (KeyError, TypeError):
        raise ConfigError(
            f"distance: expected one of {', '.join(DISTANCES)}; received {distance!r}"
        ) from None


def gram_budget(n: int = 0) -> int:
    """Bytes of rows ``layer_gram`` holds by default for an n x n Gram: ``$PASSAGE_GRAM_BYTES``
    when set (a positive integer), else ``DEFAULT_BUDGET`` or twice the Gram's own n^2 float64
    bytes, whichever is more (at most ``MAX_BUDGET``): memory already grows as n^2, and a layer
    read in one panel is read once (several panels read the later files again)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return int(min(MAX_BUDGET, max(DEFAULT_BUDGET, GRAM_SHARE * 8 * n * n)))


# -- which rows of which file -------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """The wanted rows of one file: ``local`` rows of ``entry`` go to Gram rows [lo, hi)."""

    entry: ManifestEntry
    local: np.ndarray | None  # None: every row of the file
    lo: int
    hi: int


def checked_patterns(run: Run, patterns: np.ndarray | None) -> np.ndarray:
    total = run.num_patterns
    if patterns is None:
        return np.arange(total, dtype=np.int64)
    p = np.asarray(patterns)
    if p.ndim != 1 or (p.size and not np.issubdtype(p.dtype, np.integer)):
        raise ShapeError(
            f"patterns: expected a 1-D array of pattern indices; received shape {p.shape} "
            f"dtype {p.dtype}"
        )
    p = p.astype(np.int64, copy=False)
    if p.size and np.any(np.diff(p) <= 0):
        raise ShapeError(
            "patterns: expected sorted unique pattern indices; sort them (np.unique) and "
            "reorder the Gram's rows afterwards if another order is needed"
        )
    if p.size and (p[0] < 0 or p[-1] >= total):
        bad = int(p[0]) if p[0] < 0 else int(p[-1])
        raise NotInRunError(f"pattern {bad} is out of range; run {run.path} holds {total}")
    return p


def _plan(run: Run, layer: str, epoch: int | None, patterns: np.ndarray) -> list[_Part]:
    """The files holding ``patterns``, in order; NotInRunError naming the first one missing."""
    parts: list[_Part] = []
    done = 0
    for entry in run.chunks(layer, epoch):
        lo = int(np.searchsorted(patterns, entry.first))
        hi = int(np.searchsorted(patterns, entry.first + entry.count))
        if hi == lo:
            continue
        if lo != done:
            if lo < done:
                raise StoreError(
                    f"the manifest of {run.path} lists overlapping files of layer {layer!r} "
                    f"(at {entry.path}); run `passage verify {run.path}`"
                )
            break  # patterns[done] is in no file
        local = patterns[lo:hi] - entry.first
        whole = hi - lo == entry.count
        parts.append(_Part(entry, None if whole else local, lo, hi))
        done = hi
    if done != len(patterns):
        raise NotInRunError(
            f"pattern {int(patterns[done])} of layer {layer!r} (epoch {epoch}) was not captured "
            f"in {run.path}; run `passage capture` again to resume, or `passage verify`"
        )
    return parts


def _groups(parts: list[_Part], row_bytes: int, limit: int) -> list[list[_Part]]:
    """Consecutive parts in groups of at most ``limit`` bytes of rows (at least one part)."""
    groups: list[list[_Part]] = []
    size = 0
    for part in parts:
        nbytes = (part.hi - part.lo) * row_bytes
        if groups and size + nbytes <= limit:
            groups[-1].append(part)
            size += nbytes
        else:
            groups.append([part])
            size = nbytes
    return groups


# -- reading rows into a buffer -----------------------------------------------------------------
def _center(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst`` = each row of ``src`` minus its mean over features (in float64, then rounded to
    ``dst``'s dtype). A constant row becomes exact zeros: its values are float32 (the store
    keeps float32 or float16), so the float64 sum of d < 2**29 of them is exact and the mean
    is the value itself."""
    mean = src.mean(axis=1, dtype=np.float64)
    np.subtract(src, mean[:, None], out=dst, casting="unsafe")


class _Rows:
    """Reads groups of parts into one reusable buffer, transformed for the Gram's kind."""

    def __init__(
        self,
        run: Run,
        kind: str,
        features: int,
        dtype: type[np.floating],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.run, self.kind, self.features, self.dtype = run, kind, features, dtype
        self.progress = progress
        self.reference: np.ndarray | None = None  # float64 (features,), the "shifted" kind
        self.bad: list[np.ndarray] = []  # Gram rows of patterns holding NaN/Inf

    def read(self, group: list[_Part], buf: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, their Gram indices as a slice start/stop pair): the group's rows in ``buf``
        (reallocated when too small), transformed."""
        n = sum(p.hi - p.lo for p in group)
        if buf is None or buf.shape[0] < n:
            buf = np.empty((n, self.features), dtype=self.dtype)
        rows = buf[:n]
        at = 0
        for part in group:
            arr = self.run.load(part.entry, check=True)
            flat = arr.reshape(arr.shape[0], self.features)
            src = flat if part.local is None else flat[part.local]
            dst = rows[at : at + part.hi - part.lo]
            if self.kind == "centered" and not part.entry.nonfinite:
                _center(src, dst)  # one pass less than a copy first
            else:
                dst[...] = src
                if part.entry.nonfinite:
                    bad = ~np.isfinite(dst).all(axis=1)
                    if bad.any():
                        dst[bad] = 0
                        self.bad.append(np.flatnonzero(bad) + part.lo)
                if self.kind == "centered":
                    _center(dst, dst)
            del arr, flat, src
            if self.progress is not None:
                self.progress(part.entry.bytes)
            at += dst.shape[0]
        if self.kind == "shifted":
            if self.reference is None:
                self.reference = self._mean_of_finite(rows)
            np.subtract(rows, self.reference[None, :], out=rows, casting="unsafe")
        return buf, rows

    def _mean_of_finite(self, rows: np.ndarray) -> np.ndarray:
        """The mean of the first panel's patterns, those holding NaN/Inf left out (zeroed)."""
        total = rows.sum(axis=0, dtype=np.float64)
        bad = np.concatenate(self.bad) if self.bad else np.empty(0, dtype=np.int64)
        good = rows.shape[0] - len(bad)  # the first panel starts at Gram row 0
        return total / good if good else np.zeros(self.features)


# -- products -----------------------------------------------------------------------------------
def _tiles(n: int) -> list[tuple[int, int]]:
    return [(s, min(s + TILE_ROWS, n)) for s in range(0, n, TILE_ROWS)]


def _blocks(features: int, dtype: type[np.floating]) -> list[slice]:
    if dtype is np.float64:
        return [slice(0, features)]
    return [slice(s, s + FLOAT32_BLOCK) for s in range(0, features, FLOAT32_BLOCK)]


def _multiply(
    gram: np.ndarray,
    a: np.ndarray,
    a0: int,
    b: np.ndarray | None,
    b0: int,
    blocks: list[slice],
    tmp: np.ndarray,
) -> None:
    """Add the products of ``a``'s rows (Gram rows from ``a0``) with ``b``'s (from ``b0``;
    None: ``a`` with itself, upper tiles only) into ``gram``, and mirror them."""
    for i0, i1 in _tiles(a.shape[0]):
        other = b if b is not None else a
        for j0, j1 in _tiles(other.shape[0]):
            if b is None and j0 < i0:
                continue
            out = tmp[: i1 - i0, : j1 - j0]
            target = gram[a0 + i0 : a0 + i1, b0 + j0 : b0 + j1]
            for cols in blocks:
                x = a[i0:i1, cols]
                y = x if (b is None and j0 == i0) else other[j0:j1, cols]
                np.matmul(x, y.T, out=out)  # x @ x.T: BLAS syrk
                target += out
            if not (b is None and j0 == i0):
                gram[b0 + j0 : b0 + j1, a0 + i0 : a0 + i1] = target.T


def layer_gram(
    run: Run,
    layer: str,
    epoch: int | None,
    kind: str,
    patterns: np.ndarray | None = None,
    budget: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The (n, n) float64 Gram of the layer's rows, kind-transformed, over ``patterns``.

    ``kind``: "centered", "raw" or "shifted" (``gram_kind``). ``patterns``: sorted unique
    pattern indices of the run (None: all of them, ``run.num_patterns``). ``epoch``: None is
    the last recorded one (``run.resolve_epoch``). ``budget``: bytes of rows held at once
    (None: ``gram_budget(n)``). ``progress`` is called with the bytes of each file read.
    Files are read checked (``run.load(entry, check=True)``: ``DamagedDataError``); a missing
    pattern raises ``NotInRunError``. Streaming, memory, precision and NaN rows: see the
    module's docstring.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(KINDS)}; received {kind!r}")
    epoch = run.resolve_epoch(epoch)
    wanted = checked_patterns(run, patterns)
    parts = _plan(run, layer, epoch, wanted)
    n = len(wanted)
    gram = np.zeros((n, n), dtype=np.float64)
    if not parts:
        return gram
    features = math.prod(parts[0].entry.shape)
    dtype: type[np.floating] = np.float32 if features >= FLOAT32_FEATURES else np.float64
    row_bytes = features * np.dtype(dtype).itemsize
    limit = gram_budget(len(wanted)) if budget is None else int(budget)
    if limit <= 0:
        raise ConfigError(f"budget: expected a positive number of bytes; received {budget!r}")
    if n * row_bytes <= limit:
        panels, stripe_limit = [parts], 0
    else:
        stripe_limit = max(limit // STRIPE_SHARE, 1)
        panels = _groups(parts, row_bytes, limit - stripe_limit)
    reader = _Rows(run, kind, features, dtype, progress)
    blocks = _blocks(features, dtype)
    tmp = np.empty((min(TILE_ROWS, n), min(TILE_ROWS, n)), dtype=dtype)
    panel_buf: np.ndarray | None = None
    stripe_buf: np.ndarray | None = None
    done = 0
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: NaN rows below
        for panel in panels:
            panel_buf, rows = reader.read(panel, panel_buf)
            p0 = panel[0].lo
            _multiply(gram, rows, p0, None, p0, blocks, tmp)
            done += len(panel)
            for stripe in _groups(parts[done:], row_bytes, stripe_limit):
                stripe_buf, other = reader.read(stripe, stripe_buf)
                _multiply(gram, rows, p0, other, stripe[0].lo, blocks, tmp)
            del rows
    _mark_nonfinite(gram, reader.bad, layer)
    return gram


def _mark_nonfinite(gram: np.ndarray, bad: list[np.ndarray], layer: str) -> None:
    rows = np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)
    overflow = np.flatnonzero(~np.isfinite(np.diag(gram)))
    rows = np.union1d(rows, overflow)
    if rows.size:
        gram[rows, :] = np.nan
        gram[:, rows] = np.nan
        log.info("layer %r: %d pattern(s) hold NaN/Inf; their Gram rows are NaN", layer, rows.size)


# -- distances ----------------------------------------------------------------------------------
def rdm_from_gram(gram: np.ndarray, distance: str, features: int) -> np.ndarray:
    """The (n, n) float64 RDM of a Gram from ``layer_gram`` of ``gram_kind(distance)``.

    correlation: 1 - G_ij / sqrt(G_ii G_jj) of the centered Gram (rsatoolbox ``calc_rdm``
    'correlation'); cosine: the same of the raw Gram (scipy's 'cosine'); both clipped to
    [0, 2]. euclidean: (G_ii + G_jj - 2 G_ij) / ``features`` (rsatoolbox 'euclidean', the
    mean squared difference per feature), clipped >= 0. Exactly symmetric with an exact 0
    diagonal; a pattern with a NaN Gram row, or of zero norm (correlation: constant;
    cosine: all zeros), has NaN in its row and column. No numpy warnings.
    """
    gram_kind(distance)
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ShapeError(f"gram: expected a square (n, n) matrix; received shape {g.shape}")
    if distance == "euclidean" and not features > 0:
        raise ConfigError(f"features: expected a positive count; received {features!r}")
    diag = np.diag(g).copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if distance == "euclidean":
            good = np.isfinite(diag)
            out = np.add.outer(diag, diag)
            out -= 2 * g
            out /= features
            np.maximum(out, 0, out=out)
        else:
            good = np.isfinite(diag) & (diag > 0)
            scale = np.full(diag.shape, np.nan)
            scale[good] = 1 / np.sqrt(diag[good])
            out = np.outer(scale, scale)
            out *= g
            np.subtract(1, out, out=out)
            np.clip(out, 0, 2, out=out)
    out[~good, :] = np.nan
    out[:, ~good] = np.nan
    idx = np.flatnonzero(good)
    out[idx, idx] = 0.0
    return out
