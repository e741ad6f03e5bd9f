"""Encoding models: how well a layer linearly predicts each voxel's (or neuron's) responses to
conditions it never saw, from the layer's Gram matrix alone.

Ridge regression with an unpenalized intercept, in its dual (kernel) form: everything is
computed from the N x N linear kernel ``X X^T`` of the layer, so a layer of 10^5-10^6
features never needs a features x voxels coefficient matrix (memory O(N^2 + N V)).

Per outer fold the kernel of the training conditions is centered (the intercept) and
eigendecomposed once; every penalty is then a diagonal rescaling. The penalty of each voxel is
chosen inside the training conditions only, by efficient leave-one-out cross-validation
(lowest mean squared leave-one-out error, the first of the grid on a tie): the generalized
cross-validation of scikit-learn's ``RidgeCV(alphas, alpha_per_target=True,
fit_intercept=True)`` with its default ``cv=None``, computed from the same eigendecomposition.
Each held-out condition is predicted by the model of the fold that held it out, and a voxel's
score is the Pearson r between predictions and responses within each held-out fold, averaged
over folds (a pooled r over all folds would mix in the folds' different training means, which
anti-correlate with the held-out means: about -sqrt((folds - 1) / N) on pure noise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, NeuralDataError

log = logging.getLogger(__name__)

__all__ = [
    "Encoding",
    "default_alphas",
    "fit_encoding",
    "normalized_median",
    "outer_folds",
    "reliability",
]

MIN_TEST = 3  # conditions a held-out fold needs for a Pearson r that can tell anything
MIN_TRAIN = 3  # training conditions a fold needs for leave-one-out


@dataclass(frozen=True)
class Encoding:
    """Cross-validated encoding of V voxels by one layer."""

    r: np.ndarray  # (V,) mean over outer folds of the held-out Pearson r; NaN where undefined
    alphas: np.ndarray  # (folds, V) penalty chosen per voxel in each outer fold
    predictions: np.ndarray | None = None  # (N, V) each condition predicted by its fold's model


def default_alphas(gram: np.ndarray, num: int = 21) -> np.ndarray:
    """``num`` penalties from 1e-4 to 1e6 times the mean eigenvalue of the centered kernel
    (trace / N), log-spaced: a grid that follows the kernel's scale, so a layer of values
    around 1e3 gets the same relative grid as one around 1e-3. The range runs from almost
    interpolating (far below every eigenvalue that matters) to shrinking every direction to the
    mean (above N times the mean eigenvalue, the largest any eigenvalue can be, for N < 1e6)."""
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    trace = float(np.trace(gram) - gram.sum() / n) if n else 0.0
    scale = trace / n if n and trace > 0 and np.isfinite(trace) else 1.0
    return scale * np.logspace(-4.0, 6.0, num)


def outer_folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out conditions of each outer fold: a seeded permutation of ``range(n)`` cut into
    ``folds`` parts of sizes differing by at most one (``np.array_split``), each sorted."""
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds: expected an integer >= 2, received {folds!r}")
    if n < folds * MIN_TEST:
        raise NeuralDataError(
            f"{n} conditions are too few for {folds}-fold cross-validation: each held-out fold "
            f"needs at least {MIN_TEST} conditions ({folds * MIN_TEST} in all); use fewer folds "
            "or more conditions"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(perm, folds)]


def fit_encoding(
    gram: np.ndarray,
    responses: np.ndarray,
    folds: int = 5,
    alphas: np.ndarray | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Encoding:
    """Cross-validated kernel ridge of ``responses`` (N, V) on the layer whose linear kernel is
    ``gram`` (N, N) (``X X^T``, any constant row shift of X allowed: centering on each training
    fold gives the intercept, so ``(X - 1 c^T)(X - 1 c^T)^T`` gives the same result).

    ``alphas``: the penalty grid (default :func:`default_alphas` of ``gram``); ``folds`` outer
    folds from :func:`outer_folds` with ``seed``. ``progress`` is called with 1 after each fold.
    A voxel constant over a held-out fold (or predicted constant there, e.g. by a layer
    constant over the conditions) has no r in that fold; r is the mean over the folds that have
    one, NaN when none."""
    gram, responses = _check_inputs(gram, responses)
    n, v = responses.shape
    grid = default_alphas(gram) if alphas is None else _check_alphas(alphas)
    tests = outer_folds(n, folds, seed)
    chosen = np.empty((len(tests), v))
    predictions = np.empty((n, v))
    scores = np.empty((len(tests), v))
    for k, test in enumerate(tests):
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        if train.size < MIN_TRAIN:
            raise NeuralDataError(
                f"{train.size} training conditions in a fold; leave-one-out needs at least "
                f"{MIN_TRAIN}: use more conditions"
            )
        chosen[k], predictions[test] = _fit_fold(gram, responses, train, test, grid)
        scores[k] = _pearson(predictions[test], responses[test])
        if progress is not None:
            progress(1)
    with np.errstate(invalid="ignore"):
        defined = np.isfinite(scores)
        count = defined.sum(axis=0)
        total = np.where(defined, scores, 0.0).sum(axis=0)
        r = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return Encoding(r=r, alphas=chosen, predictions=predictions)


def _check_inputs(gram: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gram = np.asarray(gram, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise NeuralDataError(f"gram: expected a square (N, N) kernel, received shape {gram.shape}")
    if responses.ndim != 2:
        raise NeuralDataError(
            f"responses: expected (conditions, voxels), received shape {responses.shape}; "
            "average repeats first"
        )
    if responses.shape[0] != gram.shape[0]:
        raise NeuralDataError(
            f"responses hold {responses.shape[0]} conditions; the layer's kernel has "
            f"{gram.shape[0]}: give responses in the order of the run's conditions"
        )
    if not np.isfinite(gram).all():
        raise NeuralDataError("gram: expected finite values, received NaN or infinity")
    if not np.isfinite(responses).all():
        bad = int((~np.isfinite(responses)).any(axis=0).sum())
        raise NeuralDataError(
            f"responses: expected finite values, received NaN or infinity in {bad} voxel(s); "
            "drop or fill them first"
        )
    return gram, responses


def _check_alphas(alphas: np.ndarray) -> np.ndarray:
    grid = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0 or not (np.isfinite(grid) & (grid > 0)).all():
        raise ConfigError(
            f"alphas: expected a non-empty 1-D array of positive finite penalties, received "
            f"{np.asarray(alphas)!r}"
        )
    return grid


def _fit_fold(
    gram: np.ndarray,
    responses: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha per voxel, predictions of the held-out conditions) of one outer fold."""
    k_train = gram[np.ix_(train, train)]
    y = responses[train]
    mean = y.mean(axis=0)
    basis, eig = _centered_eigen(k_train)  # basis (n, n-1), orthonormal, orthogonal to 1
    z = basis.T @ (y - mean)  # (n-1, V)
    best = np.full(y.shape[1], np.inf)
    pick = np.zeros(y.shape[1], dtype=np.int64)
    squares = basis**2
    for i, alpha in enumerate(grid):
        w = 1.0 / (eig + alpha)
        # Leave-one-out residual of training condition j: c_j / d_j, with c the dual
        # coefficients and d the diagonal of (K_c + alpha I)^-1 restricted to the complement
        # of the intercept (scikit-learn's d minus its intercept term, exactly).
        d = squares @ w
        loo = (basis @ (w[:, None] * z)) / d[:, None]
        err = np.einsum("ij,ij->j", loo, loo) / loo.shape[0]
        better = err < best
        best[better] = err[better]
        pick[better] = i
    coef = np.empty_like(z)
    for i in np.unique(pick):
        cols = pick == i
        coef[:, cols] = (1.0 / (eig + grid[i]))[:, None] * z[:, cols]
    dual = basis @ coef  # (n, V), each column sums to 0
    # centered kernel of the held-out conditions against the training ones; the terms constant
    # over training conditions vanish against dual coefficients that sum to 0
    cross = gram[np.ix_(test, train)] - k_train.mean(axis=0)[None, :]
    return grid[pick], mean + cross @ dual


def _centered_eigen(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis of the complement of the constant vector, (n, n-1), in which the
    kernel (centered or not: the same on that complement) is diagonal, and its eigenvalues
    (clipped at 0). The constant direction is split off exactly by a Householder reflection
    ``H = I - b v v^T`` that maps e_1 to 1/sqrt(n), not found among rounding-level eigenvalues."""
    n = kernel.shape[0]
    v = np.full(n, 1.0 / np.sqrt(n))
    v[0] -= 1.0
    b = 2.0 / (v @ v)
    kv = kernel @ v
    hkh = kernel - b * np.outer(v, kv) - b * np.outer(kv, v) + (b * b * (v @ kv)) * np.outer(v, v)
    inner = hkh[1:, 1:]
    eig, vecs = np.linalg.eigh((inner + inner.T) / 2.0)
    basis = np.vstack([np.zeros((1, n - 1)), vecs]) - b * np.outer(v, v[1:] @ vecs)
    return basis, np.clip(eig, 0.0, None)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of the columns of a and b; NaN where either column is constant (within
    rounding of its values)."""
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    saa = np.einsum("ij,ij->j", ac, ac)
    sbb = np.einsum("ij,ij->j", bc, bc)
    sab = np.einsum("ij,ij->j", ac, bc)
    eps = np.finfo(np.float64).eps
    n = a.shape[0]
    flat_a = saa <= n * (64 * eps * np.abs(a).max(axis=0, initial=0.0)) ** 2
    flat_b = sbb <= n * (64 * eps * np.abs(b).max(axis=0, initial=0.0)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sab / np.sqrt(saa * sbb)
    r[flat_a | flat_b] = np.nan
    return np.clip(r, -1.0, 1.0)


def reliability(responses: np.ndarray, seed: int = 0, splits: int = 10) -> np.ndarray:
    """(V,) split-half reliability of the mean over repeats: ``splits`` seeded random halves
    of the R repeats (floor(R/2) and the rest); per voxel, the Pearson r over conditions
    between the two halves' means, averaged over the splits, then corrected to the reliability
    of the mean of all R repeats. Equal halves (R even): Spearman-Brown, 2r / (1 + r). Unequal
    halves (R odd, a and b repeats): the same model (the same signal plus independent noise of
    equal variance in every repeat) solved for the noise, r = 1 / sqrt((1 + s/a)(1 + s/b)),
    then 1 / (1 + s/R); this equals Spearman-Brown when a = b. r <= 0 gets Spearman-Brown's
    2r / (1 + r) either way. NaN for a voxel constant over conditions in a half."""
    data = np.asarray(responses, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] < 2:
        raise NeuralDataError(
            f"responses: split-half reliability needs repeats, (R >= 2, N, V); received shape "
            f"{data.shape}"
        )
    if not isinstance(splits, (int, np.integer)) or splits < 1:
        raise ConfigError(f"splits: expected an integer >= 1, received {splits!r}")
    if not np.isfinite(data).all():
        raise NeuralDataError("responses: expected finite values, received NaN or infinity")
    repeats = data.shape[0]
    a, b = repeats // 2, repeats - repeats // 2
    rng = np.random.default_rng(seed)
    total = np.zeros(data.shape[2])
    for _ in range(splits):
        perm = rng.permutation(repeats)
        total += _pearson(data[perm[:a]].mean(axis=0), data[perm[a:]].mean(axis=0))
    r = total / splits
    return _corrected(r, a, b, repeats)


def _corrected(r: np.ndarray, a: int, b: int, repeats: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        brown = 2.0 * r / (1.0 + r)
        if a == b:
            return brown
        # s^2/(ab) + s (1/a + 1/b) + 1 - 1/r^2 = 0, the positive root s (noise / signal)
        pos = np.where(r > 0, r, 1.0)
        qa, qb, qc = 1.0 / (a * b), 1.0 / a + 1.0 / b, 1.0 - 1.0 / pos**2
        s = (-qb + np.sqrt(qb * qb - 4.0 * qa * qc)) / (2.0 * qa)
        return np.where(r > 0, 1.0 / (1.0 + s / repeats), brown)


def normalized_median(
    r: np.ndarray, reliability: np.ndarray, min_reliability: float = 0.1
) -> float:
    """Median over voxels with ``reliability > min_reliability`` (and a defined r) of
    ``r / sqrt(reliability)``: each voxel's r against the r its noise allows; NaN when no
    voxel qualifies."""
    r = np.asarray(r, dtype=np.float64)
    rel = np.asarray(reliability, dtype=np.float64)
    if r.shape != rel.shape or r.ndim != 1:
        raise NeuralDataError(
            f"expected r and reliability of the same (V,) shape, received {r.shape} and {rel.shape}"
        )
    with np.errstate(invalid="ignore"):
        keep = (rel > min_reliability) & np.isfinite(r)
    if not keep.any():
        return float("nan")
    return float(np.median(r[keep] / np.sqrt(rel[keep])))
