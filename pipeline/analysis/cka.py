"""Linear CKA between views of the same patterns, accumulated block by block (numpy only).

A *view* is one representation of the patterns: a layer's output at one epoch of one run, each
pattern's output flattened to a row. Linear CKA (Kornblith et al. 2019) between views X (n, p)
and Y (n, q), centered over the patterns, is

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F).

Two accumulators give the full V x V matrix of a list of views. Both are partial results
(``partial.Partial``): ``add`` takes one block of patterns of every view, ``merge`` another
accumulator over other patterns, ``state()`` / ``from_state`` resume, ``result()`` is the
matrix; so blocks can run in any order, in other processes, and resume from a saved state.
``choose`` picks one of them by the views' widths:

- ``ExactCka``: the count, per-view sums and every cross-product sum in feature space, centered
  at the end; equals ``linear_cka`` on all the data (to float32 rounding of each block's
  products, see the class). Its state is (sum p)^2 float64 values: 450 MB for the article's
  model (views of 3750, 2500 and 1250 features).
- ``MinibatchCka``: the unbiased estimator of Nguyen, Raghu & Kornblith 2021 (the mean over
  minibatches of Song et al.'s unbiased HSIC_1 between the views' linear Gram matrices), for
  views too wide for feature-space products. Its state is V x V.

The accumulators assume finite data: the caller drops patterns holding NaN or Inf in any view
before ``add``. A view with zero variance (constant over the patterns) gives NaN in its row
and column, never a warning. Blocks of the wrong shape raise ``ShapeError``; a damaged saved
state raises ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from ..errors import ShapeError, StoreError

# ``choose``: exact while every view has at most this many features and the exact state fits
MAX_EXACT_FEATURES = 4096
MAX_STATE_BYTES = 1 << 30
DEFAULT_BATCH_SIZE = 256  # patterns per minibatch of the minibatch estimator
MIN_BATCH_ROWS = 4  # HSIC_1 divides by n(n-3) and (n-1)(n-2)
_GRAM_COLUMNS = 16384  # columns of a minibatch view turned into float64 at a time
_MERGE_ROWS = 1024  # rows of the cross-product matrix re-shifted at a time
_PRODUCT_DTYPE = np.float32  # of each block's Z^T Z; sums across blocks are float64


def _rows(array: np.ndarray) -> np.ndarray:
    """One pattern per row: (n, *shape) -> (n, prod(shape)), without copying when possible."""
    array = np.asarray(array)
    if array.ndim == 0:
        raise ShapeError(
            "a CKA view block must hold one row per pattern; received a scalar. "
            "Pass an array shaped (patterns, *output_shape)."
        )
    return array.reshape(array.shape[0], int(np.prod(array.shape[1:], dtype=np.int64)))


def _normalized(cross: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """cross[i, j] / (norms[i] norms[j]) with 1 on the diagonal; NaN in the row and column of
    a view whose norm is not positive (zero variance), without a division warning."""
    denominator = np.outer(norms, norms)
    result = np.full(cross.shape, np.nan)
    np.divide(cross, denominator, out=result, where=denominator > 0)
    np.fill_diagonal(result, np.where(norms > 0, 1.0, np.nan))
    return result


def _exact_cka(cross: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """CKA from squared cross norms ||C_ij||^2 and self norms ||C_ii||, clipped to [0, 1]
    (where it lies exactly; rounding can step a hair outside)."""
    return np.clip(_normalized(cross, norms), 0.0, 1.0)


def _reference(rows: np.ndarray) -> np.ndarray:
    """The rows' mean in float64, exactly the value of each feature that is constant over the
    rows (a computed mean of copies of 0.1 need not be 0.1), so a constant view shifts to
    exact zeros. The exact accumulator's shift: the reference of the first block it sees."""
    reference = rows.mean(axis=0, dtype=np.float64)
    constant = rows.min(axis=0) == rows.max(axis=0)
    reference[constant] = rows[0, constant]
    return reference


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two views of the same n patterns, on all the data at once (float64).

    The reference the accumulators are checked against. Each pattern's output is flattened;
    NaN when either view has zero variance.
    """
    xc, yc = (_rows(v).astype(np.float64) for v in (x, y))
    if xc.shape[0] != yc.shape[0] or xc.shape[0] == 0:
        raise ShapeError(
            f"linear_cka needs two views of the same patterns; received {xc.shape[0]} and "
            f"{yc.shape[0]} rows. Pass the same patterns, in the same order, for both."
        )
    xc -= _reference(xc)  # the mean, exact for a constant feature: zero variance stays zero
    yc -= _reference(yc)
    norm_x = np.linalg.norm(xc.T @ xc)
    norm_y = np.linalg.norm(yc.T @ yc)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    matrix = _exact_cka(np.array([[0.0, cross], [cross, 0.0]]), np.array([norm_x, norm_y]))
    return float(matrix[0, 1])


def centered_gram(x: np.ndarray) -> np.ndarray:
    """The centered linear Gram matrix Xc Xc^T (n x n, float64) of one view."""
    xc = _rows(x).astype(np.float64)
    xc -= _reference(xc)
    return xc @ xc.T


def gram_cka(grams: Sequence[np.ndarray]) -> np.ndarray:
    """Exact linear CKA between every pair of views from their centered Grams (V x V):
    <Kc, Lc>_F / (||Kc||_F ||Lc||_F), the same value as the feature-space formula
    (||Yc^T Xc||_F^2 = tr(Kc Lc)); the cheap exact path when patterns are few."""
    flat = np.stack([np.asarray(g, np.float64).reshape(-1) for g in grams])
    inner = flat @ flat.T
    return _exact_cka(inner, np.sqrt(np.maximum(np.diag(inner), 0.0)))


def _zero_diagonal(gram: np.ndarray) -> np.ndarray:
    """A float64 copy of a Gram matrix with its diagonal set to zero."""
    tilde = np.array(gram, dtype=np.float64)
    np.fill_diagonal(tilde, 0.0)
    return tilde


def _hsic1_matrix(tildes: Sequence[np.ndarray]) -> np.ndarray:
    """HSIC_1 between every pair of n x n Grams whose diagonals are already zero: (V, V)."""
    n = tildes[0].shape[0]
    flat = np.stack([t.reshape(-1) for t in tildes])
    row_sums = np.stack([t.sum(axis=1) for t in tildes])
    totals = row_sums.sum(axis=1)
    trace_term = flat @ flat.T  # tr(K~ L~) = sum(K~ * L~) for symmetric Grams
    hsic = (
        trace_term
        + np.outer(totals, totals) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (row_sums @ row_sums.T)  # 1^T K~ L~ 1 = (K~ 1) . (L~ 1)
    ) / (n * (n - 3))
    return (hsic + hsic.T) / 2.0


def hsic1(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the paper's name)
    """Song et al. 2012's unbiased HSIC estimator of two symmetric n x n Grams (n >= 4).

    HSIC_1(K, L) = [tr(K~L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1]
    / (n(n-3)), where K~ and L~ are K and L with their diagonals set to zero.
    """
    k, l = np.asarray(k), np.asarray(l)  # noqa: E741
    n = k.shape[0]
    if k.shape != (n, n) or l.shape != (n, n) or n < MIN_BATCH_ROWS:
        raise ShapeError(
            f"hsic1 needs two square Gram matrices of the same n >= {MIN_BATCH_ROWS}; received "
            f"shapes {k.shape} and {l.shape}. Pass K = X X^T and L = Y Y^T of the same patterns."
        )
    return float(_hsic1_matrix([_zero_diagonal(k), _zero_diagonal(l)])[0, 1])


def _check_blocks(blocks: Sequence[np.ndarray], views: int) -> list[np.ndarray]:
    """The blocks as (n, features) rows, checked: one per view, all with the same n."""
    if len(blocks) != views:
        raise ShapeError(
            f"a CKA accumulator takes one block per view: expected {views}, received "
            f"{len(blocks)}. "
            "Pass the blocks of every view, in the accumulator's order."
        )
    rows = [_rows(b) for b in blocks]
    counts = {r.shape[0] for r in rows}
    if len(counts) > 1:
        raise ShapeError(
            f"the blocks of one CKA add must hold the same patterns; received row counts "
            f"{[r.shape[0] for r in rows]}. Pass the same patterns for every view."
        )
    return rows


def _state_field(
    state: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """One field of a saved state, checked; a damaged state raises StoreError."""
    if key not in state:
        raise StoreError(
            f"a saved CKA state has no {key!r}; received keys {sorted(state)}. "
            "Delete the saved analysis and analyze again."
        )
    value = np.asarray(state[key])
    if shape is not None and value.shape != shape:
        raise StoreError(
            f"a saved CKA state's {key!r} should have shape {shape}; received {value.shape}. "
            "Delete the saved analysis and analyze again."
        )
    return value


def _check_method(state: Mapping[str, np.ndarray], expected: str) -> None:
    method = str(_state_field(state, "method"))
    if method != expected:
        raise StoreError(
            f"a saved CKA state of method {method!r} cannot resume a {expected!r} accumulator. "
            "Delete the saved analysis and analyze again."
        )


class ExactCka:
    """Exact linear CKA of V views from feature-space cross-products, block by block.

    Holds, in float64, the pattern count, the sums ``s`` and the cross-product sums
    ``S = sum z z^T`` of ``z``, a pattern's outputs of every view flattened and concatenated
    (``sum(feature_counts)`` values); the centered products ``S - s s^T / n`` are formed only
    in ``result()``. Every view is first shifted by a fixed reference (see ``_reference``: the
    first block's mean), so large means cost no precision and a constant view is exactly zero.

    Each block costs one ``Z^T Z`` (BLAS syrk) in float32 (``_PRODUCT_DTYPE``), added to the
    float64 sums: 1.4x faster than float64 (the product alone 1.7x). What is exact and what is
    not: ``merge`` and ``state()`` / ``from_state`` are float64 arithmetic on the states (a
    round trip is bit for bit; merges in any order agree to float64 rounding, ~1e-16), but each
    block's ``z`` is rounded to float32 (relative error u = 2^-24) and its k-row product
    summed in float32, so an entry of ``S`` carries up to (k u + 2u) sum |z_a z_b| of error
    (the worst case; rounding errors mostly cancel, and CKA moves by about 1e-7 on
    well-conditioned data). Two different cuts of the same patterns into blocks (or different
    references, as after a merge) therefore agree to that error, not bit for bit.
    Memory: the state is (sum p)^2 float64 values (7500 features: 450 MB), and an ``add``
    needs a float32 product of that size (225 MB) and the (n, sum p) float32 block.
    """

    method: ClassVar[str] = "exact"

    def __init__(self, feature_counts: Sequence[int]) -> None:
        counts = [int(c) for c in feature_counts]
        if not counts or min(counts) < 1:
            raise ShapeError(
                f"ExactCka needs at least one view, each with at least one feature; received "
                f"feature counts {counts}."
            )
        self.feature_counts = counts
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        width = int(self._offsets[-1])
        self._count = 0
        self._reference = np.zeros(width)
        self._sums = np.zeros(width)
        self._products = np.zeros((width, width))

    @property
    def patterns(self) -> int:
        """Patterns accumulated so far."""
        return self._count

    def _view_slice(self, view: int) -> slice:
        return slice(int(self._offsets[view]), int(self._offsets[view + 1]))

    def add(self, blocks: Sequence[np.ndarray]) -> None:
        """Add one block of patterns: one (n, *shape) array per view, the same n patterns."""
        rows = _check_blocks(blocks, len(self.feature_counts))
        for view, (block, expected) in enumerate(zip(rows, self.feature_counts, strict=True)):
            if block.shape[1] != expected:
                raise ShapeError(
                    f"view {view} of a CKA block has {block.shape[1]} features per pattern; "
                    f"expected {expected}. Pass the views in the order the accumulator was made."
                )
        n = rows[0].shape[0]
        if n == 0:
            return
        if self._count == 0:
            self._reference = np.concatenate([_reference(b) for b in rows])
        shifted = np.empty((n, self._reference.size), dtype=_PRODUCT_DTYPE)
        for view, block in enumerate(rows):
            part = self._view_slice(view)
            np.subtract(
                block,
                self._reference[part],
                out=shifted[:, part],
                dtype=np.float64,
                casting="same_kind",
            )
        self._sums += shifted.sum(axis=0, dtype=np.float64)
        self._products += shifted.T @ shifted  # numpy runs syrk for a matrix times its transpose
        self._count += n

    def merge(self, other: ExactCka) -> None:
        """Add another accumulator's patterns (disjoint from ours), re-shifted to our reference:
        float64 arithmetic on the two states, so merges in any order agree to float64
        rounding."""
        if not isinstance(other, ExactCka) or other.feature_counts != self.feature_counts:
            raise ShapeError(
                f"only an exact CKA accumulator over the same views can merge into this one "
                f"(feature counts {self.feature_counts}); received {other!r}."
            )
        if other._count == 0:
            return
        if self._count == 0:
            self._reference = other._reference.copy()
            self._sums = other._sums.copy()
            self._products = other._products.copy()
            self._count = other._count
            return
        # other's z' = x - r' becomes x - r = z' + d with d = r' - r:
        # sum z z^T = S' + s' d^T + d s'^T + n' d d^T = S' + s' d^T + d (s' + n' d)^T.
        delta = other._reference - self._reference
        moved_sums = other._sums + other._count * delta
        shifted = bool(np.any(delta))
        for start in range(0, delta.size, _MERGE_ROWS):
            rows = slice(start, start + _MERGE_ROWS)
            self._products[rows] += other._products[rows]
            if shifted:
                self._products[rows] += np.outer(other._sums[rows], delta)
                self._products[rows] += np.outer(delta[rows], moved_sums)
        self._sums += moved_sums
        self._count += other._count

    def result(self) -> np.ndarray:
        """The (V, V) CKA matrix: symmetric, 1 on the diagonal, NaN for a zero-variance view."""
        views = len(self.feature_counts)
        if self._count == 0:
            return np.full((views, views), np.nan)
        means = self._sums / self._count
        cross = np.zeros((views, views))
        norms = np.zeros(views)
        for i in range(views):
            a = self._view_slice(i)
            for j in range(i, views):
                b = self._view_slice(j)
                centered = self._products[a, b] - self._count * np.outer(means[a], means[b])
                squared = float(np.einsum("ij,ij->", centered, centered))
                if i == j:
                    norms[i] = np.sqrt(squared)
                else:
                    cross[i, j] = cross[j, i] = squared
        return _exact_cka(cross, norms)

    def centered_square_norm(self, i: int, j: int) -> float:
        """||Zc_i^T Zc_j||_F^2 of views i and j, centered over the patterns so far (float64);
        what ``result()`` computes for each pair (``cka_sketch`` combines them its own way)."""
        means = self._sums / max(self._count, 1)
        a, b = self._view_slice(i), self._view_slice(j)
        centered = self._products[a, b] - self._count * np.outer(means[a], means[b])
        return float(np.einsum("ij,ij->", centered, centered))

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume or merge: plain arrays, safe for ``np.savez``."""
        return {
            "method": np.array(self.method),
            "feature_counts": np.array(self.feature_counts, dtype=np.int64),
            "count": np.array(self._count, dtype=np.int64),
            "reference": self._reference.copy(),
            "sums": self._sums.copy(),
            "products": self._products.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> ExactCka:
        """An accumulator continuing from a ``state()`` (also as loaded by ``np.load``)."""
        _check_method(state, cls.method)
        accumulator = cls(_state_field(state, "feature_counts").tolist())
        width = accumulator._reference.size
        accumulator._count = int(_state_field(state, "count", ()))
        accumulator._reference = _state_field(state, "reference", (width,)).astype(np.float64)
        accumulator._sums = _state_field(state, "sums", (width,)).astype(np.float64)
        accumulator._products = _state_field(state, "products", (width, width)).astype(np.float64)
        return accumulator


def _gram(rows: np.ndarray) -> np.ndarray:
    """X X^T of a minibatch view in float64, shifted by its first pattern (HSIC_1 is
    shift-invariant; the shift saves precision and makes a constant view exactly zero), built
    a slice of columns at a time so that a wide view never doubles in memory."""
    n = rows.shape[0]
    gram = np.zeros((n, n))
    for start in range(0, rows.shape[1], _GRAM_COLUMNS):
        part = rows[:, start : start + _GRAM_COLUMNS].astype(np.float64)
        part -= part[0]
        gram += part @ part.T
    return gram


class MinibatchCka:
    """Linear CKA of V views estimated over minibatches (Nguyen, Raghu & Kornblith 2021).

    For each minibatch of consecutive patterns, Song et al.'s unbiased HSIC_1 between the
    views' linear Gram matrices; CKA = mean HSIC_1(K, L) / sqrt(mean HSIC_1(K, K) mean
    HSIC_1(L, L)). The state is the per-pair sums of HSIC_1 and the number of minibatches;
    merging adds them. Memory: one n x n float64 Gram per view and a float64 copy of at most
    16384 columns of a view at a time, whatever the width of the views.
    """

    method: ClassVar[str] = "minibatch"
    min_rows: ClassVar[int] = MIN_BATCH_ROWS

    def __init__(self, n_views: int, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if n_views < 1 or batch_size < MIN_BATCH_ROWS:
            raise ShapeError(
                f"MinibatchCka needs at least one view and a batch size of at least "
                f"{MIN_BATCH_ROWS}; received {n_views} views, batch size {batch_size}."
            )
        self.n_views = int(n_views)
        self.batch_size = int(batch_size)  # what the caller cuts; recorded with the result
        self.batches = 0
        self._patterns = 0
        self._sums = np.zeros((self.n_views, self.n_views))

    @property
    def patterns(self) -> int:
        """Patterns used in the minibatches so far."""
        return self._patterns

    def add(self, blocks: Sequence[np.ndarray]) -> None:
        """Add ONE minibatch: one (n, *shape) array per view, the same n >= 4 patterns."""
        rows = _check_blocks(blocks, self.n_views)
        n = rows[0].shape[0]
        if n < MIN_BATCH_ROWS:
            raise ShapeError(
                f"a CKA minibatch needs at least {MIN_BATCH_ROWS} patterns; received {n}. "
                "Leave a shorter tail out (or join it to the previous minibatch)."
            )
        tildes = []
        for block in rows:
            gram = _gram(block)
            np.fill_diagonal(gram, 0.0)
            tildes.append(gram)
        self._sums += _hsic1_matrix(tildes)
        self.batches += 1
        self._patterns += n

    def merge(self, other: MinibatchCka) -> None:
        """Add another accumulator's minibatches."""
        if not isinstance(other, MinibatchCka) or other.n_views != self.n_views:
            raise ShapeError(
                f"only a minibatch CKA accumulator over {self.n_views} views can merge into this "
                f"one; received {other!r}."
            )
        self._sums += other._sums
        self.batches += other.batches
        self._patterns += other._patterns

    def result(self) -> np.ndarray:
        """The (V, V) CKA matrix: symmetric, 1 on the diagonal, NaN where a view's mean HSIC_1
        is not positive (zero variance in every minibatch, or no minibatch yet). Off the
        diagonal it is an estimate: a little below 0 or above 1 is possible and left as is."""
        if self.batches == 0:
            return np.full((self.n_views, self.n_views), np.nan)
        hsic = self._sums / self.batches
        diagonal = np.diagonal(hsic)
        return _normalized(hsic, np.sqrt(np.where(diagonal > 0, diagonal, 0.0)))

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume or merge: plain arrays, safe for ``np.savez``."""
        return {
            "method": np.array(self.method),
            "batch_size": np.array(self.batch_size, dtype=np.int64),
            "batches": np.array(self.batches, dtype=np.int64),
            "patterns": np.array(self._patterns, dtype=np.int64),
            "hsic_sums": self._sums.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> MinibatchCka:
        """An accumulator continuing from a ``state()`` (also as loaded by ``np.load``)."""
        _check_method(state, cls.method)
        sums = _state_field(state, "hsic_sums")
        if sums.ndim != 2 or sums.shape[0] != sums.shape[1]:
            raise StoreError(
                f"a saved CKA state's 'hsic_sums' should be square; received {sums.shape}. "
                "Delete the saved analysis and analyze again."
            )
        accumulator = cls(sums.shape[0], int(_state_field(state, "batch_size", ())))
        accumulator.batches = int(_state_field(state, "batches", ()))
        accumulator._patterns = int(_state_field(state, "patterns", ()))
        accumulator._sums = sums.astype(np.float64)
        return accumulator


def choose(
    feature_counts: Sequence[int],
    max_exact: int = MAX_EXACT_FEATURES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_state_bytes: int = MAX_STATE_BYTES,
) -> ExactCka | MinibatchCka:
    """The accumulator for views of ``feature_counts`` features: the exact one when every view
    has at most ``max_exact`` features and its state, (sum of the counts)^2 float64 values,
    fits ``max_state_bytes``; else the minibatch one (the caller then feeds it consecutive
    minibatches of ``batch_size`` patterns)."""
    counts = [int(c) for c in feature_counts]
    if counts and max(counts) <= max_exact and sum(counts) ** 2 * 8 <= max_state_bytes:
        return ExactCka(counts)
    return MinibatchCka(len(counts), batch_size)


def from_state(state: Mapping[str, np.ndarray]) -> ExactCka | MinibatchCka:
    """The accumulator a saved ``state()`` belongs to, continuing from it (a sketch's:
    ``cka_sketch.from_state``)."""
    method = str(_state_field(state, "method"))
    for kind in (ExactCka, MinibatchCka):
        if method == kind.method:
            return kind.from_state(state)
    raise StoreError(
        f"a saved CKA state names method {method!r}; expected 'exact' or 'minibatch' (or "
        "'sketch'). "
        "Delete the saved analysis and analyze again."
    )
