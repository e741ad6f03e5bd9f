"""Bootstrap of model scores over conditions (and over references when there are several).

Each sample does what rsatoolbox's ``eval_bootstrap`` does with ``bootstrap_sample(rdms,
rdm_descriptor="index", pattern_descriptor="index")``:

1. draw S reference indices with replacement (only when S > 1), then N condition indices with
   replacement, from ``numpy.random.default_rng(seed)``;
2. resample every RDM as rsatoolbox's ``subsample_pattern``: the drawn conditions, sorted,
   index rows and columns, and a pair of two copies of one condition (a zero on the
   diagonal of the original) becomes NaN, so that it is left out of every comparison;
3. score each model: the mean over the drawn references (with their multiplicity) of
   ``compare(model, reference, method)``.

A sample with fewer than 3 distinct conditions scores NaN, as in rsatoolbox. ``Bootstrap``
holds the (B, M) scores; its ``interval`` is the percentile interval (``numpy.nanquantile``,
linear interpolation, as rsatoolbox's ``Result.get_ci`` for bootstrap results).

Cost: B samples x (resampling M + S vectors of K = N(N-1)/2 entries + the comparisons), so
time grows as B * (M + S) * N^2 for ``cosine``/``pearson``, times log N for ``spearman`` and
(M * S comparisons of O(K log K) each) for ``tau-a``, and ``corr_cov``/``cosine_cov`` add one
N x N solve per sample and distinct gap pattern (B * N^3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ShapeError
from .comparators import as_vectors, check_method, compare, conditions_of


@dataclass(frozen=True)
class Bootstrap:
    """``scores`` (B, M): each sample's mean-over-references score of every model."""

    scores: np.ndarray

    def interval(self, level: float = 0.95) -> np.ndarray:
        """(M, 2) percentile interval holding ``level`` of the samples (NaN samples ignored;
        a model without any finite sample gets NaN)."""
        if not 0.0 < level < 1.0:
            raise ConfigError(f"level: expected a fraction in (0, 1), received {level!r}")
        cut = (1.0 - level) / 2.0
        out = np.full((self.scores.shape[1], 2), np.nan)
        for m, column in enumerate(self.scores.T):
            finite = column[np.isfinite(column)]
            if finite.size:
                out[m] = np.quantile(finite, [cut, 1.0 - cut])
        return out

    def best_fraction(self, best: int) -> float:
        """Fraction of samples in which model ``best`` scores highest."""
        return best_layer_fraction(self.scores, best)


def best_layer_fraction(samples: np.ndarray, best: int) -> float:
    """Fraction of rows of ``samples`` (B, L) whose highest finite entry is column ``best``
    (first one on ties). Rows without any finite entry are left out; NaN when none is left."""
    scores = np.asarray(samples, dtype=np.float64)
    if scores.ndim != 2 or not 0 <= best < scores.shape[1]:
        raise ShapeError(
            f"best_layer_fraction: expected (B, L) samples and 0 <= best < L, received shape "
            f"{scores.shape} and best={best}"
        )
    finite = np.isfinite(scores)
    rows = finite.any(axis=1)
    if not rows.any():
        return float("nan")
    winners = np.argmax(np.where(finite, scores, -np.inf)[rows], axis=1)
    return float(np.mean(winners == best))


def draws(
    seed: int, n: int, conditions: int, references: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The ``n`` samples ``bootstrap`` uses: (sorted condition indices (N,), reference
    indices (S,)); references are [0, S) every time when S == 1."""
    rng = np.random.default_rng(seed)
    everyone = np.arange(references)
    for _ in range(n):
        refs = rng.integers(0, references, references) if references > 1 else everyone
        picked = np.sort(rng.integers(0, conditions, conditions))
        yield picked, refs


def resample(vectors: np.ndarray, picked: np.ndarray, conditions: int) -> np.ndarray:
    """Condensed RDMs (R, K) of ``conditions`` conditions restricted to the sorted condition
    indices ``picked`` (with repeats), as rsatoolbox's ``subsample_pattern``: (R, K') with
    K' = len(picked) choose 2, NaN for the pairs of a condition with its own copy."""
    a, b = np.triu_indices(picked.size, 1)
    i, j = picked[a], picked[b]
    same = i == j
    lo = np.minimum(i, j)
    hi = np.maximum(i, j)
    pos = lo * conditions - lo * (lo + 1) // 2 + (hi - lo - 1)
    pos[same] = 0
    out = vectors[:, pos]
    out[:, same] = np.nan
    return out


def sample_scores(
    models: np.ndarray,
    references: np.ndarray,
    method: str,
    picked: np.ndarray,
    refs: np.ndarray,
    conditions: int,
) -> np.ndarray:
    """(M,) the scores of one bootstrap sample (see the module's steps 2 and 3)."""
    if np.unique(picked).size < 3:
        return np.full(models.shape[0], np.nan)
    chosen, counts = np.unique(refs, return_counts=True)
    x = resample(models, picked, conditions)
    y = resample(references[chosen], picked, conditions)
    return compare(x, y, method) @ (counts / counts.sum())


def bootstrap(
    models: np.ndarray,
    references: np.ndarray,
    method: str,
    n: int,
    seed: int,
    conditions: int,
    progress: Callable[[int], None] | None = None,
) -> Bootstrap:
    """``n`` bootstrap samples of the scores of ``models`` (M, K) against ``references``
    (S, K), condensed RDMs of ``conditions`` conditions. Conditions are resampled, and the
    references too when S > 1 (rsatoolbox's dual bootstrap). ``progress(k)`` is called with
    the number of samples just finished (``tqdm.update`` fits)."""
    check_method(method)
    x = as_vectors("models", models)
    y = as_vectors("references", references)
    if n < 1:
        raise ConfigError(f"bootstrap: expected at least 1 sample, received {n}")
    if x.shape[1] != y.shape[1] or conditions_of(x.shape[1]) != conditions:
        raise ShapeError(
            f"bootstrap: expected models and references of {conditions * (conditions - 1) // 2}"
            f" condensed entries ({conditions} conditions), received {x.shape[1]} and "
            f"{y.shape[1]}; pass the RDMs of the same conditions"
        )
    samples = list(draws(seed, n, conditions, y.shape[0]))
    if method == "tau-a" and _signs_fit(x, y):
        return Bootstrap(scores=_tau_a_samples(x, y, samples, conditions, progress))
    scores = np.empty((n, x.shape[0]))
    for row, (picked, refs) in enumerate(samples):
        scores[row] = sample_scores(x, y, method, picked, refs, conditions)
        if progress is not None:
            progress(1)
    return Bootstrap(scores=scores)


# tau-a of every sample at once needs sign(x_e - x_f) sign(y_e - y_f) for every model and
# reference and every pair of entries e, f: (M S K^2) float32, up to this many bytes.
SIGN_BYTES = 256 << 20
_SAMPLES_AT_ONCE = 256


def _signs_fit(x: np.ndarray, y: np.ndarray) -> bool:
    k = x.shape[1]
    finite = not (np.isnan(x).any() or np.isnan(y).any())
    return finite and x.shape[0] * y.shape[0] * k * k * 4 <= SIGN_BYTES


def _pair_signs(v: np.ndarray) -> np.ndarray:
    """sign(v_e - v_f) of every ordered pair of entries of each row: (rows, K, K) float32."""
    return np.sign(v[:, :, None] - v[:, None, :]).astype(np.float32)


def _tau_a_samples(
    x: np.ndarray,
    y: np.ndarray,
    samples: list[tuple[np.ndarray, np.ndarray]],
    conditions: int,
    progress: Callable[[int], None] | None,
) -> np.ndarray:
    """``sample_scores`` of every sample for tau-a without NaN entries, as matrix products.

    A sample keeps entry e = (i, j) of the RDMs c_i c_j times (c: how often each condition
    was drawn) and drops the pairs of a condition with its own copy, so with w_e = c_i c_j
    its tau-a numerator is (1/2) sum_ef w_e w_f sign(x_e - x_f) sign(y_e - y_f) (equal
    entries add 0) over K' (K' - 1) / 2 pairs, K' = sum_e w_e: the same value as tau-a of the
    resampled vectors. Exact: float32 sums of integers below 2**24."""
    m, k = x.shape
    sx, sy = _pair_signs(x), _pair_signs(y)
    products = (sx[:, None] * sy[None, :]).reshape(m * y.shape[0], k, k)
    del sx, sy
    rows, cols = np.triu_indices(conditions, 1)
    scores = np.empty((len(samples), m))
    for start in range(0, len(samples), _SAMPLES_AT_ONCE):
        part = samples[start : start + _SAMPLES_AT_ONCE]
        counts = np.stack([np.bincount(p, minlength=conditions) for p, _ in part])
        w = (counts[:, rows] * counts[:, cols]).astype(np.float32)  # (b, K)
        half = (products.reshape(-1, k) @ w.T).reshape(-1, k, len(part))  # exact integers
        numerators = np.einsum("peb,be->pb", half.astype(np.float64), w) / 2
        kept = w.sum(axis=1, dtype=np.float64)
        taus = numerators / (kept * (kept - 1) / 2)  # (M S, b)
        taus = taus.reshape(m, y.shape[0], len(part))
        for i, (picked, refs) in enumerate(part):
            if np.unique(picked).size < 3:
                scores[start + i] = np.nan
                continue
            chosen, times = np.unique(refs, return_counts=True)
            scores[start + i] = taus[:, chosen, i] @ (times / times.sum())
        if progress is not None:
            progress(len(part))
    return scores
