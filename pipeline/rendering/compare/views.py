"""What each compare picture shows (pure, no matplotlib): a comparison's arrays picked for
one epoch, the best layer as an index, the colour scale of a score heatmap, where group
boundaries fall on a downsampled RDM, how RDM panels are arranged, and the regions' lines of
agreement. The drawing modules take these plain arrays."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rdm_order import block_starts

MAX_FLAT_LABELS = 8  # more layer names than this (or long ones) are written rotated
FLAT_CHARS = 10


@dataclass(frozen=True)
class Profile:
    """One epoch's scores per layer, in model order."""

    layers: list[str]
    score: np.ndarray | None  # (L,) mean over references (None: no RSA in this comparison)
    ci: np.ndarray | None  # (L, 2) bootstrap interval
    ceiling: tuple[float, float]  # (lower, upper), NaN when unknown
    best: int  # index of the best layer, -1 when none
    best_p: float  # bootstrap fraction in which it stays best (NaN when unknown)
    encoding: np.ndarray | None  # (L,) median encoding r
    epoch: int | None


def _pick(value: Any, e: int | None) -> Any:
    return None if value is None else (np.asarray(value)[e] if e is not None else value)


def epoch_index(comparison: Mapping[str, Any], epoch: int | None = None) -> int | None:
    """The position of ``epoch`` in a training comparison's ``epochs`` (None: the last one);
    None for a batch comparison."""
    epochs = comparison.get("epochs")
    if epochs is None:
        return None
    epochs = [int(v) for v in epochs]
    if not epochs:
        raise ValueError("epochs: expected at least one epoch in a training comparison")
    if epoch is None:
        return len(epochs) - 1
    if epoch not in epochs:
        raise ValueError(f"epoch: expected one of {epochs}, received {epoch}")
    return epochs.index(epoch)


def best_index(layers: Sequence[str], best: Any, score: np.ndarray | None) -> int:
    """The index of layer ``best`` (a name), else the highest finite ``score``; -1 when
    neither says."""
    if best is not None and str(best) in layers:
        return list(layers).index(str(best))
    if score is None:
        return -1
    s = np.asarray(score, np.float64)
    return int(np.nanargmax(s)) if np.isfinite(s).any() else -1


def profile_view(comparison: Mapping[str, Any], epoch: int | None = None) -> Profile:
    """The profile of one epoch (training runs: the last one unless ``epoch`` is given)."""
    layers = [str(v) for v in comparison["layers"]]
    e = epoch_index(comparison, epoch)
    score = _pick(comparison.get("score"), e)
    score = None if score is None else np.asarray(score, np.float64)
    ci = _pick(comparison.get("ci"), e)
    encoding = _pick(comparison.get("encoding_median"), e)
    best_p = _pick(comparison.get("best_layer_p"), e)
    lo, hi = comparison.get("noise_ceiling", (math.nan, math.nan))
    return Profile(
        layers=layers,
        score=score,
        ci=None if ci is None else np.asarray(ci, np.float64),
        ceiling=(float(lo), float(hi)),
        best=best_index(layers, _pick(comparison.get("best_layer"), e), score),
        best_p=math.nan if best_p is None else float(best_p),
        encoding=None if encoding is None else np.asarray(encoding, np.float64),
        epoch=None if e is None else int(comparison["epochs"][e]),
    )


def band(ceiling: tuple[float, float]) -> tuple[float, float] | None:
    """The noise-ceiling band (lower, upper), None unless both are finite."""
    lo, hi = (float(v) for v in ceiling)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def tick_rotation(names: Sequence[str]) -> int:
    """Degrees the layer names under a profile are turned: 0 for a few short ones, else 45
    (up to 24 of them) or 90."""
    if len(names) <= MAX_FLAT_LABELS and max((len(n) for n in names), default=0) <= FLAT_CHARS:
        return 0
    return 45 if len(names) <= 24 else 90


def epoch_grid(comparison: Mapping[str, Any], key: str = "score") -> tuple[np.ndarray, np.ndarray]:
    """A training comparison's ``key`` as layers (rows, model order) x epochs (columns), and
    the best layer's row per epoch (-1 where no layer has a finite value)."""
    values = np.asarray(comparison[key], np.float64)  # (E, L)
    layers = [str(v) for v in comparison["layers"]]
    best = comparison.get("best_layer") if key == "score" else None
    rows = [
        best_index(layers, None if best is None else best[e], values[e])
        for e in range(values.shape[0])
    ]
    return values.T.copy(), np.asarray(rows, np.int64)


def score_scale(values: np.ndarray) -> tuple[str, tuple[float, float]]:
    """The colour map and limits of a score heatmap: a diverging map centred on 0 when the
    finite scores have both signs, else a sequential one over their range."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return "viridis", (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if lo < 0.0 < hi:
        top = max(-lo, hi)
        return "RdBu_r", (-top, top)
    if hi == lo:
        return "viridis", (lo - 0.5, hi + 0.5)
    return "viridis", (lo, hi)


def boundaries(groups: Sequence[tuple[int, int, int]], n: int, size: int) -> list[float]:
    """Where lines between label groups go on an RDM of ``n`` conditions shown reduced to at
    most ``size`` blocks (``rdm_order.downsample``), in the shown matrix's coordinates (cell
    centres at integers): before each group but the first."""
    if n <= size:
        return [start - 0.5 for start, _, _ in groups[1:]]
    starts = block_starts(n, size)
    m = starts.size
    # condition ``start`` lies in block j = the last block starting at or before it; the line
    # goes at its fraction of the way through that block
    out = []
    for start, _, _ in groups[1:]:
        j = int(np.searchsorted(starts, start, side="right") - 1)
        stop = int(starts[j + 1]) if j + 1 < m else n
        out.append(j - 0.5 + (start - int(starts[j])) / (stop - int(starts[j])))
    return out


def panel_grid(panels: int, most_columns: int = 6) -> tuple[int, int]:
    """(rows, columns) of a sheet of ``panels`` RDM panels: about square, at most
    ``most_columns`` wide."""
    cols = max(1, min(most_columns, math.ceil(math.sqrt(panels))))
    return math.ceil(panels / cols), cols


def wrap_lines(text: str, width: float, points: float) -> str:
    """``text`` with each of its lines broken at spaces to fit ``width`` inches at ``points``."""
    chars = max(20, int(width * 72 / (points * 0.56)))
    return "\n".join("\n".join(textwrap.wrap(line, chars)) or line for line in text.split("\n"))


def fraction_text(p: float) -> str:
    return f"{100 * p:.0f} %" if math.isfinite(p) else "n/a"


@dataclass(frozen=True)
class Regions:
    """Regions x layers at one epoch."""

    regions: list[str]
    layers: list[str]
    scores: np.ndarray  # (R, L)
    best: np.ndarray  # (R,) column of the best layer, -1 when none
    best_p: np.ndarray  # (R,)
    named: np.ndarray  # (R,) column of the layer named after the region, -1 when none
    agrees: np.ndarray  # (R,) 1 yes, 0 no, -1 no named layer
    epoch: int | None


def regions_view(regions: Mapping[str, Any], epoch: int | None = None) -> Regions:
    """``Run.regions()`` at one epoch (training runs: the last one unless given)."""
    names = [str(v) for v in regions["regions"]]
    layers = [str(v) for v in regions["layers"]]
    e = epoch_index(regions, epoch)
    scores = np.asarray(_pick(regions["scores"], e), np.float64).reshape(len(names), len(layers))
    best_names = _pick(regions.get("best_layer"), e)
    best_names = [None] * len(names) if best_names is None else list(best_names)
    best = np.array(
        [best_index(layers, b, s) for b, s in zip(best_names, scores, strict=True)], np.int64
    )
    p = _pick(regions.get("best_layer_p"), e)
    named_names = regions.get("named_layer") or [""] * len(names)
    lowered = [n.lower() for n in layers]
    named = np.array(
        [lowered.index(n.lower()) if n and n.lower() in lowered else -1 for n in named_names],
        np.int64,
    )
    agrees = regions.get("agrees")
    if agrees is None:
        agrees = np.where(named < 0, -1, (named == best).astype(np.int64))
    return Regions(
        regions=names,
        layers=layers,
        scores=scores,
        best=best,
        best_p=np.full(len(names), np.nan) if p is None else np.asarray(p, np.float64),
        named=named,
        agrees=np.asarray(agrees, np.int64),
        epoch=None if e is None else int(regions["epochs"][e]),
    )


def agreement_line(
    region: str, layers: Sequence[str], best: int, p: float, named: int, agrees: int
) -> str:
    """One line saying whether the layer named after ``region`` is the one its data prefer."""
    preferred = (
        f"{layers[best]!r} (best in {fraction_text(p)} of bootstrap samples)"
        if best >= 0
        else "no layer"
    )
    if agrees < 0 or named < 0:
        return f"{region}: no layer is named after it; the data prefer {preferred}"
    if agrees > 0:
        return f"{region}: yes, {layers[named]!r}, named after it, is the layer the data prefer (best in {fraction_text(p)} of bootstrap samples)"
    return f"{region}: no, {layers[named]!r} is named after it but the data prefer {preferred}"
