"""RDM comparison methods, defined exactly as rsatoolbox's ``rsatoolbox.rdm.compare``.

Every function takes CONDENSED RDM vectors (upper triangle, row-major, as
``scipy.spatial.distance.squareform``); NaN marks a missing entry. An entry missing in either
RDM of a pair is left out of that pair's comparison, which is what rsatoolbox does (it drops
every position that is NaN in any RDM it is handed, and refuses sets whose NaN positions
differ; comparing pair by pair extends that to references with different gaps).

Methods (rsatoolbox's name in brackets where it differs):

- ``cosine``: cosine of the two vectors.
- ``pearson`` (``corr``): cosine of the mean-centered vectors.
- ``spearman``: Pearson correlation of the ranks (ties get their average rank).
- ``tau-a``: Kendall's tau-a, (concordant - discordant) / (K'(K'-1)/2), the numerator taken
  from ``scipy.stats.kendalltau``'s tau-b and the tie counts, so O(K log K), exact.
- ``cosine_cov`` / ``corr_cov``: the cosine after whitening by the covariance of RDM entries
  under i.i.d. pattern noise (rsatoolbox's ``_cov_weighting`` without ``sigma_k``): the
  entries are read as G = -D/2, double-centered (all entries present) or, with gaps, reduced
  by rsatoolbox's weighted least-squares fit of row + column effects; off-diagonal entries
  count twice. ``corr_cov`` subtracts each vector's mean over its present entries first.

A zero-norm vector (e.g. a constant RDM under ``pearson``) scores 0, as in rsatoolbox; a pair
with fewer than two entries left scores NaN.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.stats

from ..errors import ConfigError, ShapeError

METHODS = ("spearman", "pearson", "tau-a", "cosine", "corr_cov", "cosine_cov")


def check_method(method: str) -> str:
    """``method`` itself, or ConfigError naming the accepted values."""
    if method not in METHODS:
        raise ConfigError(
            f"method: expected one of {', '.join(METHODS)}, received {method!r}; "
            "pick one of those RDM comparison methods"
        )
    return method


def conditions_of(entries: int) -> int:
    """N such that N(N-1)/2 == ``entries``; ShapeError when there is none."""
    n = int(round((1 + np.sqrt(1 + 8 * entries)) / 2))
    if n * (n - 1) // 2 != entries or n < 2:
        raise ShapeError(
            f"condensed RDMs: expected a length N(N-1)/2 for some N >= 2, received {entries}; "
            "pass the upper triangle of square RDMs (scipy.spatial.distance.squareform)"
        )
    return n


def as_vectors(what: str, values: np.ndarray) -> np.ndarray:
    """(R, K) float64 from a (K,) or (R, K) array; ShapeError otherwise."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ShapeError(
            f"{what}: expected condensed RDMs of shape (R, K) or (K,), received shape "
            f"{np.shape(values)}; flatten square RDMs with scipy.spatial.distance.squareform"
        )
    return array


def compare(models: np.ndarray, references: np.ndarray, method: str) -> np.ndarray:
    """(M, S) similarities of condensed ``models`` (M, K) with ``references`` (S, K).

    Equals ``rsatoolbox.rdm.compare(RDMs(models), RDMs(references), method)`` (``pearson`` is
    its ``corr``) whenever rsatoolbox accepts the input; NaN entries are dropped per pair.
    """
    check_method(method)
    x = as_vectors("models", models)
    y = as_vectors("references", references)
    if x.shape[1] != y.shape[1]:
        raise ShapeError(
            f"compare: models and references must have the same number of condensed entries, "
            f"received {x.shape[1]} and {y.shape[1]}; both must describe the same N conditions"
        )
    n = conditions_of(x.shape[1])
    x_ok = ~np.isnan(x)
    y_ok = ~np.isnan(y)
    if x_ok.all() and y_ok.all():
        return _block(x, y, method, np.ones(x.shape[1], bool), n)
    out = np.empty((x.shape[0], y.shape[0]))
    for rows, x_mask in _mask_groups(x_ok):
        for cols, y_mask in _mask_groups(y_ok):
            joint = x_mask & y_mask
            block = _block(x[rows][:, joint], y[cols][:, joint], method, joint, n)
            out[np.ix_(rows, cols)] = block
    return out


def _mask_groups(ok: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows of ``ok`` grouped by identical masks: [(row indices, mask)]."""
    if (ok == ok[0]).all():
        return [(np.arange(ok.shape[0]), ok[0])]
    groups: dict[bytes, list[int]] = {}
    for row, packed in enumerate(np.packbits(ok, axis=1)):
        groups.setdefault(packed.tobytes(), []).append(row)
    return [(np.asarray(rows), ok[rows[0]]) for rows in groups.values()]


def _block(x: np.ndarray, y: np.ndarray, method: str, mask: np.ndarray, n: int) -> np.ndarray:
    """(a, b) comparisons of rows already restricted to the entries in ``mask``."""
    if x.shape[1] < 2:
        return np.full((x.shape[0], y.shape[0]), np.nan)
    if method == "cosine":
        return _cosine(x, y)
    if method == "pearson":
        return _cosine(_centered(x), _centered(y))
    if method == "spearman":
        rx = scipy.stats.rankdata(x, axis=1)
        ry = scipy.stats.rankdata(y, axis=1)
        return _cosine(_centered(rx), _centered(ry))
    if method == "tau-a":
        return _tau_a_block(x, y)
    if method == "corr_cov":
        x, y = _centered(x), _centered(y)
    return _cosine(cov_weighted(x, mask, n), cov_weighted(y, mask, n))


def _centered(v: np.ndarray) -> np.ndarray:
    return v - v.mean(axis=1, keepdims=True)


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosines of every row pair; 0 where a row has zero norm (rsatoolbox's ``_cosine``)."""
    nx = np.sqrt(np.einsum("ij,ij->i", x, x))
    ny = np.sqrt(np.einsum("ij,ij->i", y, y))
    dots = x @ y.T
    ok = np.outer(nx > 0, ny > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dots / nx[:, None] / ny[None, :]
    return np.where(ok, cos, 0.0)


def tied_pairs(v: np.ndarray) -> int:
    """Number of pairs of entries of ``v`` with equal values."""
    _, counts = np.unique(v, return_counts=True)
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a of two 1-D vectors without NaN, in O(K log K)."""
    return _tau_a(x, y, tied_pairs(x), tied_pairs(y))


def _tau_a(x: np.ndarray, y: np.ndarray, xtie: int, ytie: int) -> float:
    size = x.size
    tot = size * (size - 1) // 2
    if tot == 0:
        return float("nan")
    if xtie == tot or ytie == tot:  # a constant vector: no pair is concordant or discordant
        return 0.0
    tau_b = scipy.stats.kendalltau(x, y, method="asymptotic").statistic
    # tau_b = (con - dis) / sqrt((tot - xtie)(tot - ytie)); con - dis is an integer whose
    # magnitude is far below 2**52, so rounding recovers it exactly.
    con_minus_dis = round(float(tau_b) * np.sqrt(float(tot - xtie)) * np.sqrt(float(tot - ytie)))
    return min(1.0, max(-1.0, con_minus_dis / tot))


def _tau_a_block(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xties = [tied_pairs(row) for row in x]
    yties = [tied_pairs(row) for row in y]
    out = np.empty((x.shape[0], y.shape[0]))
    for i, row in enumerate(x):
        for j, col in enumerate(y):
            out[i, j] = _tau_a(row, col, xties[i], yties[j])
    return out


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _incidence(n: int, mask: np.ndarray) -> scipy.sparse.csr_matrix:
    """(K', N) sparse matrix: row e of a present pair (i, j) has ones at i and j."""
    i, j = _pairs(n)
    i, j = i[mask], j[mask]
    rows = np.repeat(np.arange(i.size), 2)
    cols = np.stack([i, j], axis=1).reshape(-1)
    return scipy.sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(i.size, n))


def cov_weighted(v: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """rsatoolbox's ``_cov_weighting`` (no ``sigma_k``) of rows ``v`` (R, K') holding the
    entries in ``mask`` (K,) of N-condition RDMs: (R, K' + N), off-diagonal part first."""
    g = -0.5 * v
    inc = _incidence(n, mask)
    sums = np.asarray((inc.T @ g.T).T)  # (R, N) row sums of G (its diagonal is 0)
    i, j = _pairs(n)
    i, j = i[mask], j[mask]
    if mask.all():
        # double centering of the full matrix: G_ij - m_i - m_j + mm
        m = sums / n
        mm = 2.0 * g.sum(axis=1, keepdims=True) / (n * n)
        off = g - m[:, i] - m[:, j] + mm
        diag = -2.0 * m + mm
    else:
        # rsatoolbox's fit of row + column effects with weights 1/2 (pairs) and 1 (diagonal):
        # u = (v S) (S' W S)^-1, then v - W S u, with S' W S = (degree + adjacency) / 2 + I
        normal = np.asarray((inc.T @ inc).todense()) / 2.0 + np.eye(n)
        u = np.linalg.solve(normal, sums.T).T  # normal is symmetric
        off = g - 0.5 * (u[:, i] + u[:, j])
        diag = -u
    return np.concatenate([off * np.sqrt(2.0), diag], axis=1)
