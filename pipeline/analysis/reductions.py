"""What one layer does over many patterns, as a mergeable partial result (pure numpy).

``LayerReduction`` speaks ``partial.Partial``'s verbs: it takes a layer's chunks of patterns
in any order (``add``), merges with another reduction of disjoint patterns (``merge``),
round-trips through ``state()`` / ``from_state`` (the runner stores partial results to resume),
and ``result()`` gives the documented arrays. Everything is over the finite values: NaN and
infinities are left out and counted (``nonfinite``). Counts, extremes, histogram counts and
top K merge exactly; means and variances of other cuts of the same patterns agree to the
float32 rounding of each block's sums (the merge itself is float64).

Speed: a chunk is walked in blocks of about 1 MiB so that the ten passes each statistic needs
run from the CPU cache, not from memory. A chunk whose manifest line says it holds no NaN or
infinity takes the fast path (no mask). Per element, each block's float32 sums are taken around
a shift (the first pattern seen) and merged in float64 with Chan's formula, so the variance of
a unit whose mean is large against its spread keeps its digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import kernel
from .histogram import BINS, Binner, count_indices, value_range
from .partial import Chunk
from .topk import TopK, best

BLOCK_BYTES = 1 << 20


def channels_of(shape: tuple[int, ...]) -> int:
    """The channel count of a per-pattern shape: its last axis (1 for a scalar output)."""
    return int(shape[-1]) if shape else 1


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per element (float64): a building block of
    ``LayerReduction`` that merges (its chunks' sums are taken by the reduction's fused loop)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> Moments:
        return cls(np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape))

    def merge(self, other: Moments) -> None:
        """Chan et al.'s pairwise update with another part's moments (disjoint values)."""
        total = self.count + other.count
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            frac = np.where(total > 0, other.count / np.maximum(total, 1), 0.0)
            self.mean = self.mean + delta * frac
            self.m2 = self.m2 + other.m2 + delta * delta * self.count * frac
        self.count = total


@dataclass
class LayerReduction:
    """A layer's statistics over the patterns added so far (see the module docstring)."""

    shape: tuple[int, ...]
    lo: float | None
    hi: float | None
    k: int = 9
    classes: np.ndarray | None = None  # the class values labels can take, sorted
    fused: bool | None = None  # the compiled pass: kernel.plan's answer, None: by position
    patterns: int = 0
    nonfinite: int = 0
    elem: Moments = field(init=False)
    chan: Moments = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)
    positive: np.ndarray = field(init=False)
    chan_positive: np.ndarray = field(init=False)
    hist: np.ndarray = field(init=False)
    top: TopK = field(init=False)
    class_count: np.ndarray = field(init=False)
    class_sum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(v) for v in self.shape)
        c = channels_of(self.shape)
        self.elem = Moments.zeros(self.shape)
        self.chan = Moments.zeros((c,))
        self.minimum = np.full(self.shape, np.inf, np.float32)
        self.maximum = np.full(self.shape, -np.inf, np.float32)
        self.positive = np.zeros(self.shape, np.int64)
        self.chan_positive = np.zeros(c, np.int64)
        self.hist = np.zeros(BINS, np.int64)
        self.top = TopK.empty(c, self.k)
        n_cls = 0 if self.classes is None else len(self.classes)
        self.class_count = np.zeros((n_cls, c), np.int64)
        self.class_sum = np.zeros((n_cls, c))
        self._binner = Binner(*value_range(self.lo, self.hi))

    @property
    def features(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    # -- adding data --------------------------------------------------------------------------
    def add(self, chunk: Chunk) -> None:
        """Add patterns ``chunk.first .. chunk.first + n - 1`` (``chunk.values`` shaped
        (n, *shape)); ``chunk.clean``: known to hold only finite values, the fast path;
        ``chunk.labels``: one class value per pattern of the chunk."""
        values = np.asarray(chunk.values)
        n = values.shape[0]
        if n == 0:
            return
        flat = values.reshape(n, -1)
        if flat.dtype != np.float32:
            flat = flat.astype(np.float32)
        if not chunk.clean and not np.isfinite(flat).all():
            act = self._add_masked(flat)
        elif kernel.wanted(chunk.first * 4 * flat.shape[1], self.fused):
            act = self._add_clean_fused(flat)
        else:
            act = self._add_clean(flat)
        self.patterns += n
        self._add_channels(act, chunk.first, chunk.labels)

    def _add_clean(self, flat: np.ndarray) -> np.ndarray:
        n, f = flat.shape
        c = channels_of(self.shape)
        rows = max(1, BLOCK_BYTES // max(1, 4 * f))
        count_type = np.uint8 if min(rows, n) <= 255 else np.int64
        counted = np.empty(f, count_type)
        ones = np.ones((1, f // c), np.float32)
        shift = flat[0]
        buf = np.empty((min(rows, n), f), np.float32)
        above = np.empty((min(rows, n), f), np.bool_)
        idx = np.empty((n, f), np.uint8)
        act = np.empty((n, c), np.float32)
        mn, mx = self.minimum.reshape(-1), self.maximum.reshape(-1)
        pos = self.positive.reshape(-1)
        s1, s2 = np.zeros(f), np.zeros(f)
        for a in range(0, n, rows):
            blk = flat[a : a + rows]
            m = blk.shape[0]
            b = buf[:m]
            np.subtract(blk, shift, out=b)
            s1 += b.sum(axis=0)
            s2 += np.einsum("ij,ij->j", b, b)
            np.minimum(mn, blk.min(axis=0), out=mn)
            np.maximum(mx, blk.max(axis=0), out=mx)
            np.greater(blk, 0, out=above[:m])
            # counts of at most 255 rows fit uint8: a quarter of the memory traffic of int64
            np.add.reduce(above[:m].view(np.uint8), axis=0, dtype=count_type, out=counted)
            pos += counted
            self._binner.index(blk, out=idx[a : a + m])
            np.matmul(ones, blk.reshape(m, -1, c), out=act[a : a + m, None, :])
        self._moments(np.full(f, n, np.int64), s1, s2, shift.astype(np.float64))
        self.hist += _numpy_hist(self._binner, flat, idx)
        return act.astype(np.float64) / (f // c)

    def _add_clean_fused(self, flat: np.ndarray) -> np.ndarray:
        """``_add_clean`` in one compiled pass (``fused.clean_pass``): the same blocks of
        float32 sums around the same shift, merged in float64; the same bins."""
        n, f = flat.shape
        c = channels_of(self.shape)
        flat = np.ascontiguousarray(flat)
        rows = max(1, BLOCK_BYTES // max(1, 4 * f))
        shift = flat[0].copy()
        s1, s2 = np.zeros(f), np.zeros(f)
        hist = np.zeros(BINS + 1, np.int64)
        act = np.empty((n, c), np.float32)
        mn, mx = self.minimum.reshape(-1), self.maximum.reshape(-1)
        pos = self.positive.reshape(-1)
        b = self._binner
        fused = kernel.load(strict=True)
        fused(flat, shift, b.lo, b.scale, c, rows, s1, s2, mn, mx, pos, hist, act)
        self._moments(np.full(f, n, np.int64), s1, s2, shift.astype(np.float64))
        if b.holds(float(mn.min()), float(mx.max())):  # hence every value of this chunk
            hist[BINS - 1] += hist[BINS]
            self.hist += hist[:BINS]
        else:  # a manifest range that does not hold the data: counted as the numpy path does
            self.hist += _numpy_hist(b, flat)
        return act.astype(np.float64) / (f // c)

    def _add_masked(self, flat: np.ndarray) -> np.ndarray:
        ok = np.isfinite(flat)
        self.nonfinite += int(flat.size - np.count_nonzero(ok))
        count = ok.sum(axis=0, dtype=np.int64)
        vals = np.where(ok, flat, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = vals.sum(axis=0, dtype=np.float64) / np.maximum(count, 1)
        dev = np.where(ok, vals - shift, 0.0)
        self._moments(count, dev.sum(axis=0), np.einsum("ij,ij->j", dev, dev), shift)
        mn, mx = self.minimum.reshape(-1), self.maximum.reshape(-1)
        np.minimum(mn, np.where(ok, flat, np.inf).min(axis=0), out=mn)
        np.maximum(mx, np.where(ok, flat, -np.inf).max(axis=0), out=mx)
        self.positive.reshape(-1)[:] += np.count_nonzero((flat > 0) & ok, axis=0)
        self.hist += self._binner.count(flat[ok])
        return self._channel_means(vals, ok)

    def _moments(
        self, count: np.ndarray, s1: np.ndarray, s2: np.ndarray, shift: np.ndarray
    ) -> None:
        with np.errstate(invalid="ignore", divide="ignore"):
            dmean = np.where(count > 0, s1 / np.maximum(count, 1), 0.0)
            m2 = np.maximum(s2 - count * dmean * dmean, 0.0)
        self.elem.merge(
            Moments(
                count.reshape(self.shape),
                (shift + dmean).reshape(self.shape),
                m2.reshape(self.shape),
            )
        )

    def _channel_means(self, flat: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
        """Each pattern's channel activation (n, C): the mean over every other axis (of the
        finite values; NaN when a channel holds none)."""
        n = flat.shape[0]
        c = channels_of(self.shape)
        per = flat.reshape(n, -1, c)
        sums = np.einsum("npc->nc", per, dtype=np.float64)
        if ok is None:
            return sums / per.shape[1]
        counts = ok.reshape(n, -1, c).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _add_channels(self, act: np.ndarray, first: int, labels: np.ndarray | None) -> None:
        if not np.isnan(act).any():  # every activation known: the same sums, fewer passes
            ok, vals = np.ones(act.shape, np.bool_), act
            count = np.full(act.shape[1], act.shape[0])
            mean = act.sum(axis=0) / act.shape[0]
            m2 = ((act - mean) ** 2).sum(axis=0)
            self.chan_positive += np.count_nonzero(act > 0, axis=0)
        else:
            ok = ~np.isnan(act)
            count = ok.sum(axis=0)
            vals = np.where(ok, act, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, vals.sum(axis=0) / np.maximum(count, 1), 0.0)
            m2 = np.where(ok, (act - mean) ** 2, 0.0).sum(axis=0)
            self.chan_positive += np.count_nonzero(ok & (vals > 0), axis=0)
        self.chan.merge(Moments(count.astype(np.int64), mean, m2))
        self._add_top(act, first)
        if labels is not None and self.classes is not None and len(self.classes):
            where = np.searchsorted(self.classes, labels)
            for j in np.unique(where):
                rows = where == j
                self.class_count[j] += ok[rows].sum(axis=0)
                self.class_sum[j] += vals[rows].sum(axis=0)

    def _add_top(self, act: np.ndarray, first: int) -> None:
        """``self.top.add(Chunk(act, first))`` over only the patterns that can enter it: a row
        whose every channel is below that channel's K-th best so far (or NaN) cannot, so the
        answer is the same, ties included (a value equal to the K-th best is kept)."""
        kth = self.top.values[:, -1]  # -inf while a channel holds fewer than K
        rows = np.flatnonzero((act >= kth).any(axis=1))
        if len(rows) == len(act):
            self.top.add(Chunk(act, first))
            return
        if len(rows):
            cand = act[rows].T  # (C, candidates)
            idx = np.broadcast_to(first + rows.astype(np.int64), cand.shape)
            self.top.values, self.top.indices = best(
                np.concatenate([self.top.values, cand], axis=1),
                np.concatenate([self.top.indices, idx], axis=1),
                self.top.k,
            )

    # -- merging and keeping ------------------------------------------------------------------
    def merge(self, other: LayerReduction) -> None:
        """Add another reduction of the same layer over disjoint patterns."""
        self.patterns += other.patterns
        self.nonfinite += other.nonfinite
        self.elem.merge(other.elem)
        self.chan.merge(other.chan)
        np.minimum(self.minimum, other.minimum, out=self.minimum)
        np.maximum(self.maximum, other.maximum, out=self.maximum)
        self.positive += other.positive
        self.chan_positive += other.chan_positive
        self.hist += other.hist
        self.top.merge(other.top)
        self.class_count += other.class_count
        self.class_sum += other.class_sum

    _STATE = (
        "minimum",
        "maximum",
        "positive",
        "chan_positive",
        "hist",
        "class_count",
        "class_sum",
    )

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this reduction (arrays only: an ``.npz``)."""
        out = {name: getattr(self, name) for name in self._STATE}
        for part in ("elem", "chan"):
            m = getattr(self, part)
            out.update({f"{part}_count": m.count, f"{part}_mean": m.mean, f"{part}_m2": m.m2})
        out.update(self.top.state())
        out["shape"] = np.array(self.shape, np.int64)
        out["range"] = np.array(
            [np.nan if self.lo is None else self.lo, np.nan if self.hi is None else self.hi]
        )
        out["counts"] = np.array([self.patterns, self.nonfinite, self.k], np.int64)
        out["classes"] = np.array([] if self.classes is None else self.classes, np.int64)
        out["has_classes"] = np.array(self.classes is not None)
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> LayerReduction:
        lo, hi = (None if np.isnan(v) else float(v) for v in state["range"])
        patterns, nonfinite, k = (int(v) for v in state["counts"])
        classes = state["classes"] if bool(state["has_classes"]) else None
        red = cls(tuple(int(v) for v in state["shape"]), lo, hi, k, classes)
        for name in cls._STATE:
            setattr(red, name, np.array(state[name]))
        for part in ("elem", "chan"):
            setattr(
                red,
                part,
                Moments(
                    np.array(state[f"{part}_count"]),
                    np.array(state[f"{part}_mean"]),
                    np.array(state[f"{part}_m2"]),
                ),
            )
        red.top = TopK.from_state(state)
        red.patterns, red.nonfinite = patterns, nonfinite
        return red

    # -- the answer ---------------------------------------------------------------------------
    def result(self) -> dict[str, np.ndarray]:
        """The documented arrays (``store.analysis_files.LAYER_KEYS``; with labels also
        ``classes`` and ``class_channel_mean``)."""
        count = self.elem.count
        seen = count > 0
        c = channels_of(self.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {
                "mean": np.where(seen, self.elem.mean, np.nan),
                "std": np.where(seen, np.sqrt(self.elem.m2 / np.maximum(count, 1)), np.nan),
                "min": np.where(seen, self.minimum.astype(np.float64), np.nan),
                "max": np.where(seen, self.maximum.astype(np.float64), np.nan),
                "frac_positive": np.where(seen, self.positive / np.maximum(count, 1), np.nan),
                "count": count.copy(),
                "nonfinite": np.array(self.nonfinite, np.int64),
            }
            cn = self.chan.count
            out["channel_mean"] = np.where(cn > 0, self.chan.mean, np.nan)
            out["channel_std"] = np.where(cn > 0, np.sqrt(self.chan.m2 / np.maximum(cn, 1)), np.nan)
            out["channel_frac_positive"] = np.where(
                cn > 0, self.chan_positive / np.maximum(cn, 1), np.nan
            )
            peak = self.maximum.astype(np.float64).reshape(-1, c)
            any_seen = seen.reshape(-1, c).any(axis=0)
            out["dead"] = any_seen & (np.where(seen.reshape(-1, c), peak, -np.inf).max(axis=0) <= 0)
            out["hist_edges"] = self._binner.edges.copy()
            out["hist_counts"] = self.hist.copy()
            out.update(self.top.result())
            if self.classes is not None:
                out["classes"] = np.asarray(self.classes, np.int64).copy()
                out["class_channel_mean"] = np.where(
                    self.class_count > 0, self.class_sum / np.maximum(self.class_count, 1), np.nan
                )
        return out


def _numpy_hist(binner: Binner, flat: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """The histogram of a clean chunk as the numpy path counts it (``idx``: its bin indices
    when already computed)."""
    idx = binner.index(flat) if idx is None else idx
    hist = count_indices(idx.reshape(-1))
    if hist.sum() != flat.size:  # a manifest range that does not hold the data
        hist = binner.count(flat)
    return hist
