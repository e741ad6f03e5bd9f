"""Linear CKA of views too many for the exact state, from a randomized sketch (numpy + scipy).

Each view X_i (n, p_i) is projected from the right by TWO independent CountSketch matrices
R_i and R'_i (p_i, k_i), k_i = min(k, p_i): every feature lands in one of k_i buckets (a random
permutation cut into buckets of floor/ceil p_i / k_i features) with a random sign. Centering
commutes with a right projection ((X - 1m^T) R = Xc R), so an ``ExactCka`` over the 2V sketched
views accumulates, block by block, the centered products that the estimates need:

- self term: ||R_i^T Xc_i^T Xc_i R'_i||_F^2 estimates ||Xc_i^T Xc_i||_F^2 without bias (R_i and
  R'_i independent, E[R R^T] = I); with the SAME R on both sides it would be biased upwards,
  by about the view's effective rank / k;
- cross term (i != j): ||S_i^T Xc_i^T Xc_j S_j||_F^2, S_i in {R_i, R'_i}, S_j in {R_j, R'_j}:
  all four pairs are unbiased; ``frobenius`` gives their mean, and the CKA uses their
  geometric mean (see ``SketchCka.result``).

Error bound (worst case, any data). For a fixed matrix A and a CountSketch R with k buckets
and independent signs, ||A R||_F^2 is unbiased with variance (2 / k') sum_{a != b}
(A^T A)_ab^2 <= (2/k) ||A||_F^4, k' >= k the inverse of the chance that two features share a
bucket (at most (ceil(p/k) - 1) / (p - 1) <= 1/k). Applying that to each side in turn, each
Frobenius estimate T of ||M||_F^2 has

    E[T] = ||M||_F^2,  sd(T) / ||M||_F^2 <= sigma_k = sqrt((1 + 2/k)^2 - 1) = 2 sqrt((1 + 1/k)/k)

(``frobenius_sd_bound``). CKA_ij = C_ij / sqrt(S_i S_j) is a ratio of such estimates: to first
order its relative error is e_C - e_i/2 - e_j/2, so its relative standard deviation is at most
2 sigma_k (``cka_sd_bound``, the triangle inequality for standard deviations), and its bias is
second order (at most ~2 sigma_k^2 relative; measured, it is far smaller: see the tests). The bound is reached only by views of effective
rank ~1; for a view of effective rank r (||A||_F^4 / ||A^T A||_F^2) the variance shrinks ~1/r.
The estimate is clipped to [0, 1], where CKA lies, which can only bring it closer.
Cost per block: a sparse product of nnz = 2 p_i per row and one float32 syrk of 2 sum(k_i)
columns; state: (2 sum k_i)^2 float64 values (k = 256, 3 views: 19 MB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sparse

from ..errors import ShapeError, StoreError
from . import cka
from .cka import ExactCka, MinibatchCka, _check_blocks, _check_method, _state_field

DEFAULT_SKETCH_SIZE = 256  # buckets per sketch per view
DEFAULT_SEED = 0


def frobenius_sd_bound(size: int) -> float:
    """sigma_k: the most the relative standard deviation of one sketched squared Frobenius norm
    can be, any data, with ``size`` buckets per sketch."""
    return float(np.sqrt((1.0 + 2.0 / size) ** 2 - 1.0))


def cka_sd_bound(size: int) -> float:
    """2 sigma_k: the most the relative standard deviation of a sketched CKA can be, to first
    order (its error over the CKA itself)."""
    return 2.0 * frobenius_sd_bound(size)


def _projection(features: int, size: int, seed: int, view: int) -> sparse.csr_matrix:
    """The CountSketch [R | R']^T of one view, (2 b, features), b = min(size, features)
    buckets each; fixed by (seed, view, features), so a resumed or merged state projects the
    same. Transposed, so that ``R^T X^T`` runs row by row of a float32 CSR matrix."""
    rng = np.random.default_rng([seed, view, features])
    buckets = min(size, features)
    rows = np.arange(features)
    cols, signs = [], []
    for half in range(2):
        where = np.empty(features, np.int64)
        where[rng.permutation(features)] = rows * buckets // features  # floor/ceil p/b each
        cols.append(where + half * buckets)
        signs.append(rng.choice(np.array([-1.0, 1.0]), features))
    return sparse.csr_matrix(
        (
            np.concatenate(signs).astype(np.float32),
            (np.concatenate(cols), np.concatenate([rows, rows])),
        ),
        shape=(2 * buckets, features),
    )


class SketchCka:
    """Linear CKA of V views estimated from two CountSketches per view (see the module).

    A ``partial.Partial`` like ``ExactCka``: ``add`` a block of every view, ``merge`` another
    accumulator over other patterns (the same views, size and seed), ``state()`` /
    ``from_state`` resume; merges are float64 arithmetic on ``ExactCka`` states.
    """

    method: ClassVar[str] = "sketch"

    def __init__(
        self, feature_counts: Sequence[int], size: int = DEFAULT_SKETCH_SIZE, seed: int = 0
    ) -> None:
        counts = [int(c) for c in feature_counts]
        if not counts or min(counts) < 1 or size < 1:
            raise ShapeError(
                f"SketchCka needs at least one view of at least one feature and a sketch size "
                f">= 1; received feature counts {counts}, size {size}."
            )
        self.feature_counts = counts
        self.size = int(size)
        self.seed = int(seed)
        self._projections = [_projection(p, self.size, self.seed, v) for v, p in enumerate(counts)]
        sketched = [min(self.size, p) for p in counts for _ in range(2)]
        self._inner = ExactCka(sketched)  # views Y_0, Y'_0, Y_1, Y'_1, ...

    @property
    def patterns(self) -> int:
        """Patterns accumulated so far."""
        return self._inner.patterns

    def add(self, blocks: Sequence[np.ndarray]) -> None:
        """Add one block of patterns: one (n, *shape) array per view, the same n patterns."""
        rows = _check_blocks(blocks, len(self.feature_counts))
        sketched = []
        for view, (block, expected) in enumerate(zip(rows, self.feature_counts, strict=True)):
            if block.shape[1] != expected:
                raise ShapeError(
                    f"view {view} of a CKA block has {block.shape[1]} features per pattern; "
                    f"expected {expected}. Pass the views in the order the accumulator was made."
                )
            # float32, unshifted: a sketched column sums ~p/k values, so a mean m costs it
            # ~u |m| / sd relative (u = 2^-24), far below the sketch's own error
            both = np.asarray(self._projections[view] @ block.T).T
            half = both.shape[1] // 2
            sketched += [both[:, :half], both[:, half:]]
        if rows[0].shape[0]:
            self._inner.add(sketched)

    def merge(self, other: SketchCka) -> None:
        """Add another accumulator's patterns (disjoint from ours)."""
        if not isinstance(other, SketchCka) or (
            other.feature_counts,
            other.size,
            other.seed,
        ) != (self.feature_counts, self.size, self.seed):
            raise ShapeError(
                f"only a sketch CKA accumulator over the same views, size and seed can merge "
                f"into this one (feature counts {self.feature_counts}, size {self.size}, seed "
                f"{self.seed}); received {other!r}."
            )
        self._inner.merge(other._inner)

    def _pairs(self, i: int, j: int) -> list[float]:
        """The four sketched ||Xc_i^T Xc_j||_F^2 of views i != j, one per pair of sketches."""
        square = self._inner.centered_square_norm
        return [square(2 * i + s, 2 * j + t) for s in range(2) for t in range(2)]

    def frobenius(self) -> np.ndarray:
        """The (V, V) estimates of ||Xc_i^T Xc_j||_F^2, each unbiased (see the module): the
        self terms on the diagonal, the mean of the four sketch pairs off it."""
        views = len(self.feature_counts)
        out = np.zeros((views, views))
        for i in range(views):
            out[i, i] = self._inner.centered_square_norm(2 * i, 2 * i + 1)
            for j in range(i + 1, views):
                out[i, j] = out[j, i] = float(np.mean(self._pairs(i, j)))
        return out

    def result(self) -> np.ndarray:
        """The (V, V) CKA estimate: symmetric, 1 on the diagonal, within [0, 1]; NaN for a view
        of zero variance (or before any pattern). The cross term is the GEOMETRIC mean of the
        four sketch pairs: to first order the same as their mean, but it shares the self
        terms' sketches symmetrically, so the ratio's second-order bias nearly cancels (the
        mean's, by AM >= GM, does not: +0.04 against +0.000 on rank-1 views, k = 16)."""
        views = len(self.feature_counts)
        if self.patterns == 0:
            return np.full((views, views), np.nan)
        squares = np.zeros((views, views))
        for i in range(views):
            squares[i, i] = self._inner.centered_square_norm(2 * i, 2 * i + 1)
            for j in range(i + 1, views):
                pairs = np.array(self._pairs(i, j))
                mean_log = np.mean(np.log(pairs)) if pairs.min() > 0 else -np.inf
                squares[i, j] = squares[j, i] = float(np.exp(mean_log))
        norms = np.sqrt(np.maximum(np.diagonal(squares), 0.0))
        denominator = np.outer(norms, norms)
        result = np.full((views, views), np.nan)
        np.divide(squares, denominator, out=result, where=denominator > 0)
        np.fill_diagonal(result, np.where(norms > 0, 1.0, np.nan))
        return np.clip(result, 0.0, 1.0)

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume or merge: plain arrays, safe for ``np.savez``."""
        inner = self._inner.state()
        inner.update(
            method=np.array(self.method),
            view_features=np.array(self.feature_counts, dtype=np.int64),
            sketch_size=np.array(self.size, dtype=np.int64),
            seed=np.array(self.seed, dtype=np.int64),
        )
        return inner

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> SketchCka:
        """An accumulator continuing from a ``state()`` (also as loaded by ``np.load``)."""
        _check_method(state, cls.method)
        accumulator = cls(
            _state_field(state, "view_features").tolist(),
            int(_state_field(state, "sketch_size", ())),
            int(_state_field(state, "seed", ())),
        )
        inner = {key: state[key] for key in state}
        inner["method"] = np.array(ExactCka.method)
        restored = ExactCka.from_state(inner)
        if restored.feature_counts != accumulator._inner.feature_counts:
            raise StoreError(
                f"a saved sketch CKA state holds sketched views of {restored.feature_counts} "
                f"columns; expected {accumulator._inner.feature_counts}. Delete the saved "
                "analysis and analyze again."
            )
        accumulator._inner = restored
        return accumulator


def from_state(state: Mapping[str, np.ndarray]) -> ExactCka | MinibatchCka | SketchCka:
    """Any saved CKA accumulator (exact, minibatch or sketch), continuing from it."""
    if str(_state_field(state, "method")) == SketchCka.method:
        return SketchCka.from_state(state)
    return cka.from_state(state)
