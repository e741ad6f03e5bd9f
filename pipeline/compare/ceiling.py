"""The noise ceiling of a set of reference RDMs: how well any model could score.

What rsatoolbox's ``boot_noise_ceiling(rdms, method, rdm_descriptor="index")`` returns, and
so what this module computes, is deterministic despite the name: it draws no bootstrap
sample. For each reference i it pools the other references (lower bound) and all references
(upper bound) into the RDM that scores best under ``method`` (rsatoolbox's ``pool_rdm``), and
compares that pool with reference i; each bound is the mean over i. rsatoolbox's
``eval_bootstrap`` can also call it once per bootstrap sample and plot the mean of those
values; that average is a different, resampling-dependent quantity (duplicated conditions
lose their pairs, duplicated references leave out together), not the ceiling of the data, so
ours is the deterministic one and equals rsatoolbox's to rounding.

Pooling, per method (NaN entries ignored within each reference, and NaN in the pool wherever
any pooled reference is NaN, as rsatoolbox's ``_nan_mean`` gives):

- ``spearman``, ``tau-a``: the mean of the references' ranks;
- ``pearson``, ``corr_cov``: the mean of the z-scored references (population std), shifted
  so that its minimum is 0;
- ``cosine``, ``cosine_cov``: the mean of the references divided by their root mean square.

With a single reference there is nothing to leave out: (NaN, NaN).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from .comparators import as_vectors, check_method, compare


def pool(references: np.ndarray, method: str) -> np.ndarray:
    """(K,) the RDM that best represents ``references`` (S, K) under ``method``."""
    check_method(method)
    v = as_vectors("references", references)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method in ("spearman", "tau-a"):
            v = scipy.stats.rankdata(v, axis=1, nan_policy="omit")
        elif method in ("pearson", "corr_cov"):
            v = v - _nanmean(v)
            v = v / np.sqrt(_nanmean(v * v))
        else:
            v = v / np.sqrt(_nanmean(v * v))
        pooled = v.mean(axis=0)
        if method in ("pearson", "corr_cov") and not np.all(np.isnan(pooled)):
            pooled = pooled - np.nanmin(pooled)
    return pooled


def _nanmean(v: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(v)
    return np.where(ok, v, 0.0).sum(axis=1, keepdims=True) / ok.sum(axis=1, keepdims=True)


def noise_ceiling(references: np.ndarray, method: str) -> tuple[float, float]:
    """(lower, upper): leave-one-reference-out and all-references ceilings of ``references``
    (S, K) condensed, as rsatoolbox's ``boot_noise_ceiling``; (NaN, NaN) when S == 1."""
    check_method(method)
    v = as_vectors("references", references)
    count = v.shape[0]
    if count < 2:
        return float("nan"), float("nan")
    everyone = pool(v, method)
    lower = np.empty(count)
    upper = np.empty(count)
    for i in range(count):
        others = pool(np.delete(v, i, axis=0), method)
        lower[i] = compare(others, v[i], method)[0, 0]
        upper[i] = compare(everyone, v[i], method)[0, 0]
    return float(lower.mean()), float(upper.mean())
