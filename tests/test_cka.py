"""Linear CKA (pipeline/analysis/cka.py): the full-data reference, the unbiased HSIC, and the
exact and minibatch accumulators fed block by block, merged, saved and resumed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis import cka
from pipeline.errors import ShapeError, StoreError

# ExactCka vs linear_cka on the same stored values (float32 or float16): ExactCka sums each
# block's products in float32, whose rounding errors mostly cancel (about sqrt(k) u per entry;
# ~1e-7 in CKA here). The worst case it guarantees is larger: see _float32_error_bound.
TOLERANCE = 1e-6
U32 = 2.0**-24  # float32's unit roundoff
U64 = 2.0**-53
# float64 rounding of the merges, the centering and the norms (~1e-16 here)
FLOAT64_SLACK = 1e-12


def _views(n: int, seed: int, widths: tuple[int, ...] = (12, 20, 7)) -> list[np.ndarray]:
    """Correlated views of n patterns, shaped like layer outputs (a map, a vector, a map):
    each a noisy nonlinear function of one shared latent, so CKA lies well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 6))
    shapes = [(widths[0] // 3, 3), (widths[1],), (1, widths[2])]
    views = []
    for shape, width in zip(shapes, widths, strict=True):
        mixed = np.tanh(latent @ rng.standard_normal((6, width)) / 3)
        views.append((mixed + 0.3 * rng.standard_normal((n, width)) + 0.3).reshape(n, *shape))
        latent = latent + 0.3 * rng.standard_normal(latent.shape)
    return views


def _reference_matrix(views: list[np.ndarray]) -> np.ndarray:
    return np.array([[cka.linear_cka(a, b) for b in views] for a in views])


def _feature_counts(views: list[np.ndarray]) -> list[int]:
    return [int(np.prod(v.shape[1:])) for v in views]


def _feed(accumulator, views: list[np.ndarray], sizes: list[int]) -> None:
    start = 0
    for size in sizes:
        accumulator.add([v[start : start + size] for v in views])
        start += size


def _float32_error_bound(
    views: list[np.ndarray], blocks: list[tuple[int, int, np.ndarray]]
) -> np.ndarray:
    """The most ExactCka's matrix can differ from linear_cka's (V x V), from the float32 rounding
    of the ``blocks`` it took: (first, stop, reference of the accumulator that took it).

    Per block of k rows, z = x - reference is rounded to float32 (|dz| <= u|z|) and Z^T Z summed
    in float32: each entry off by at most (g_k + 2u + u^2) sum |z_a||z_b|, g_k = k u / (1 - k u)
    in any summation order (Higham, Accuracy and Stability, 3.1); its float64 sums s off by
    (u + k u64) sum |z|. Merges re-shift in float64, and once centered (C = S - s s^T / n) a
    block's sum error enters as ds (r - mean)^T + (r - mean) ds^T, whatever the reference r
    the merges shifted to. So |dC| <= B entrywise; then |d||C_xy||^2| <= 2 <|C_xy|, B_xy> +
    ||B_xy||^2 and |d||C_xx||| <= ||B_xx|| bound CKA = ||C_xy||^2 / (||C_xx|| ||C_yy||).
    """
    rows = [v.reshape(v.shape[0], -1).astype(np.float64) for v in views]
    x = np.concatenate(rows, axis=1)
    mean = x.mean(axis=0)
    bound = np.zeros((x.shape[1], x.shape[1]))
    for first, stop, reference in blocks:
        k = stop - first
        z = np.abs(x[first:stop] - reference)
        gamma = k * U32 / (1 - k * U32) + 2 * U32 + U32**2
        sums_error = (U32 + k * U64) * z.sum(axis=0)
        offset = np.abs(reference - mean)
        bound += gamma * (z.T @ z) + np.outer(sums_error, offset) + np.outer(offset, sums_error)
    centered = (x - mean).T @ (x - mean)
    edges = np.cumsum([0] + [r.shape[1] for r in rows])
    part = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    norm = [np.linalg.norm(centered[p, p]) for p in part]
    slack = [np.linalg.norm(bound[p, p]) for p in part]
    out = np.zeros((len(rows), len(rows)))
    for i in range(len(rows)):
        for j in range(len(rows)):
            if i == j:
                continue  # exactly 1
            c, b = centered[part[i], part[j]], bound[part[i], part[j]]
            cross, dcross = np.sum(c * c), 2 * np.sum(np.abs(c) * b) + np.sum(b * b)
            value = cross / (norm[i] * norm[j])
            high = (cross + dcross) / ((norm[i] - slack[i]) * (norm[j] - slack[j]))
            low = (cross - dcross) / ((norm[i] + slack[i]) * (norm[j] + slack[j]))
            out[i, j] = max(high - value, value - low)
    return out


def _centered_gram(x: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n: the Gram-space centering, independent of feature means."""
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    n = x.shape[0]
    h = np.eye(n) - np.full((n, n), 1.0 / n)
    return h @ (x @ x.T) @ h


# -- the full-data reference --------------------------------------------------------------------


def test_linear_cka_equals_the_gram_hsic_form():
    x, y, z = _views(60, seed=1)
    for a, b in [(x, y), (x, z), (y, z)]:
        kc, lc = _centered_gram(a), _centered_gram(b)
        expected = np.trace(kc @ lc) / np.sqrt(np.trace(kc @ kc) * np.trace(lc @ lc))
        assert cka.linear_cka(a, b) == pytest.approx(expected, abs=1e-12)
        assert 0.05 < expected < 0.95


def test_identical_views_give_one():
    x, _, _ = _views(200, seed=2)
    assert cka.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    accumulator = cka.ExactCka([12, 12])
    accumulator.add([x, x.copy()])
    np.testing.assert_allclose(accumulator.result(), np.ones((2, 2)), atol=1e-6)
    minibatch = cka.MinibatchCka(2, 50)
    _feed(minibatch, [x, x], [50, 50, 50, 50])
    np.testing.assert_allclose(minibatch.result(), np.ones((2, 2)), atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-1e3, 1e3),
)
def test_invariant_to_orthogonal_transforms_scaling_and_shifts(seed, scale, shift):
    rng = np.random.default_rng(seed)
    x, y, _ = _views(80, seed=seed % 1000)
    x = x.reshape(80, -1)
    q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))
    base = cka.linear_cka(x, y)
    assert 0.0 <= base <= 1.0
    assert cka.linear_cka(y, x) == pytest.approx(base, abs=1e-12)
    assert cka.linear_cka(x @ q, y) == pytest.approx(base, abs=1e-9)
    assert cka.linear_cka(scale * x, y) == pytest.approx(base, abs=1e-9)
    assert cka.linear_cka(x + shift, y) == pytest.approx(base, abs=1e-9)
    # the accumulators on the transformed views give the reference's value too
    exact = cka.ExactCka([x.shape[1], 20])
    _feed(exact, [(x @ q) * scale + shift, y], [33, 47])
    assert exact.result()[0, 1] == pytest.approx(base, abs=1e-5)


def test_minibatch_estimator_is_invariant_too():
    x, y, _ = _views(400, seed=3)
    x = x.reshape(400, -1)
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((12, 12)))
    plain, moved = cka.MinibatchCka(2, 100), cka.MinibatchCka(2, 100)
    _feed(plain, [x, y], [100] * 4)
    _feed(moved, [3.5 * (x @ q) + 250.0, y - 40.0], [100] * 4)
    np.testing.assert_allclose(moved.result(), plain.result(), atol=1e-9)
    far = cka.MinibatchCka(2, 100)  # large means cost no precision either
    _feed(far, [x + 1e5, y - 1e5], [100] * 4)
    np.testing.assert_allclose(far.result(), plain.result(), atol=1e-9)


# -- the exact accumulator -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_exact_accumulator_in_uneven_blocks_equals_linear_cka(dtype, offset):
    views = [(v + offset).astype(dtype) for v in _views(1000, seed=4)]
    accumulator = cka.ExactCka(_feature_counts(views))
    _feed(accumulator, views, [1, 300, 299, 0, 333, 67])  # sizes that do not divide 1000
    assert accumulator.patterns == 1000
    matrix = accumulator.result()
    np.testing.assert_allclose(matrix, _reference_matrix(views), rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.all(np.diagonal(matrix) == 1.0)
    assert np.all((matrix >= 0) & (matrix <= 1))
    off_diagonal = matrix[~np.eye(3, dtype=bool)]
    assert np.all((off_diagonal > 0.1) & (off_diagonal < 0.9))


def test_float16_storage_moves_cka_little_from_the_original_data():
    original = _views(1000, seed=5)
    stored = [v.astype(np.float16) for v in original]
    accumulator = cka.ExactCka(_feature_counts(stored))
    _feed(accumulator, stored, [400, 400, 200])
    # float16 keeps ~3 decimal digits; over 1000 patterns CKA moves by far less than that
    np.testing.assert_allclose(accumulator.result(), _reference_matrix(original), atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_exact_merge_and_state_round_trips_are_exact(tmp_path, offset):
    """Merging states and saving them are exact (float64 arithmetic on the states); cutting the
    same patterns into other blocks is not: each block's products are float32 sums."""
    views = [(v + offset).astype(np.float32) for v in _views(900, seed=6)]
    counts = _feature_counts(views)
    first, second, third = cka.ExactCka(counts), cka.ExactCka(counts), cka.ExactCka(counts)
    # disjoint pieces whose first blocks differ: the three references differ
    _feed(first, [v[:250] for v in views], [100, 150])
    _feed(second, [v[250:600] for v in views], [1, 349])
    _feed(third, [v[600:] for v in views], [300])
    r1, r2, r3 = (part.state()["reference"] for part in (first, second, third))
    assert not np.array_equal(r1, r2)

    np.savez(tmp_path / "second.npz", **second.state())
    with np.load(tmp_path / "second.npz", allow_pickle=False) as saved:
        loaded = cka.from_state(saved)
    assert isinstance(loaded, cka.ExactCka)
    for key, value in second.state().items():  # a saved state comes back bit for bit
        np.testing.assert_array_equal(loaded.state()[key], value, err_msg=key)
    np.testing.assert_array_equal(loaded.result(), second.result())

    merged = cka.ExactCka.from_state(first.state())
    merged.merge(loaded)
    merged.merge(cka.ExactCka(counts))  # an empty one adds nothing
    merged.merge(third)
    assert merged.patterns == 900
    reference = _reference_matrix(views)
    np.testing.assert_allclose(merged.result(), reference, atol=TOLERANCE)
    # the same states merged in other orders (other references to re-shift to): float64 apart
    for order in [(third, first, second), (second, third, first)]:
        other = cka.ExactCka(counts)
        for part in order:
            other.merge(part)
        np.testing.assert_allclose(other.result(), merged.result(), rtol=0, atol=FLOAT64_SLACK)

    # resumed from first's state, the rest fed as one block: other blocks, other float32 sums
    into_empty = cka.ExactCka(counts)
    into_empty.merge(first)
    resumed = cka.from_state(into_empty.state())
    _feed(resumed, [v[250:] for v in views], [650])
    merged_bound = _float32_error_bound(
        views, [(0, 100, r1), (100, 250, r1), (250, 251, r2), (251, 600, r2), (600, 900, r3)]
    )
    resumed_bound = _float32_error_bound(views, [(0, 100, r1), (100, 250, r1), (250, 900, r1)])
    assert resumed_bound.max() < 1e-3  # a bound that still says something
    assert np.all(np.abs(merged.result() - reference) <= merged_bound + FLOAT64_SLACK)
    assert np.all(np.abs(resumed.result() - reference) <= resumed_bound + FLOAT64_SLACK)
    difference = np.abs(resumed.result() - merged.result())
    assert np.all(difference <= merged_bound + resumed_bound + FLOAT64_SLACK)


def test_exact_state_is_plain_arrays():
    accumulator = cka.ExactCka([4, 3])
    accumulator.add([np.ones((5, 4), np.float32), np.arange(15.0).reshape(5, 3)])
    state = accumulator.state()
    assert {k: v.dtype.kind for k, v in state.items()} == {
        "method": "U",
        "feature_counts": "i",
        "count": "i",
        "reference": "f",
        "sums": "f",
        "products": "f",
    }
    assert state["products"].shape == (7, 7)


# -- the unbiased HSIC and the minibatch accumulator -----------------------------------------


def _hsic1_by_quadruples(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. 2012's U-statistic itself: the mean over ordered 4-tuples of distinct
    indices (t, u, v, w) of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv (loop-free, O(n^4))."""
    n = k.shape[0]
    t, u, v, w = np.ix_(*[np.arange(n)] * 4)
    distinct = (t != u) & (t != v) & (t != w) & (u != v) & (u != w) & (v != w)
    terms = k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
    return float(terms[distinct].sum() / distinct.sum())


def _hsic1_by_matrices(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """The closed form written with matrices and ones vectors, term by term."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


@pytest.mark.parametrize("n", [4, 5, 9])
def test_hsic1_equals_the_u_statistic(n):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 5))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert cka.hsic1(k, l) == pytest.approx(_hsic1_by_quadruples(k, l), rel=1e-10)
    assert cka.hsic1(k, l) == pytest.approx(_hsic1_by_matrices(k, l), rel=1e-10)
    assert cka.hsic1(k, l) == pytest.approx(cka.hsic1(l, k), rel=1e-12)


def test_one_minibatch_is_the_hsic1_ratio():
    x, y, _ = _views(40, seed=7)
    k, l = x.reshape(40, -1) @ x.reshape(40, -1).T, y @ y.T  # noqa: E741
    expected = cka.hsic1(k, l) / np.sqrt(cka.hsic1(k, k) * cka.hsic1(l, l))
    accumulator = cka.MinibatchCka(2, 40)
    accumulator.add([x, y])
    assert accumulator.result()[0, 1] == pytest.approx(expected, rel=1e-9)


def test_minibatch_estimate_is_within_002_of_exact():
    views = [v.astype(np.float32) for v in _views(2000, seed=8, widths=(30, 40, 25))]
    exact = cka.ExactCka(_feature_counts(views))
    _feed(exact, views, [2000])
    minibatch = cka.MinibatchCka(3, 256)
    _feed(minibatch, views, [256] * 7 + [208])  # consecutive batches, the last one shorter
    assert minibatch.patterns == 2000 and minibatch.batches == 8
    reference = exact.result()
    off_diagonal = reference[~np.eye(3, dtype=bool)]
    assert np.all((off_diagonal > 0.3) & (off_diagonal < 0.9)), reference
    np.testing.assert_allclose(minibatch.result(), reference, atol=0.02)


def test_minibatch_merge_and_state_round_trip(tmp_path):
    views = _views(600, seed=9)
    whole = cka.MinibatchCka(3, 100)
    _feed(whole, views, [100] * 6)
    left, right = cka.MinibatchCka(3, 100), cka.MinibatchCka(3, 100)
    _feed(left, [v[:300] for v in views], [100] * 3)
    _feed(right, [v[300:] for v in views], [100] * 3)
    np.savez(tmp_path / "right.npz", **right.state())
    with np.load(tmp_path / "right.npz", allow_pickle=False) as saved:
        right = cka.from_state(saved)
    assert isinstance(right, cka.MinibatchCka) and right.batch_size == 100
    left.merge(right)
    assert (left.patterns, left.batches) == (600, 6)
    np.testing.assert_allclose(left.result(), whole.result(), atol=1e-12)


def test_wide_views_are_built_a_slice_of_columns_at_a_time(monkeypatch):
    views = _views(64, seed=10)
    plain = cka.MinibatchCka(3, 32)
    _feed(plain, views, [32, 32])
    monkeypatch.setattr(cka, "_GRAM_COLUMNS", 5)  # several slices per view
    sliced = cka.MinibatchCka(3, 32)
    _feed(sliced, views, [32, 32])
    np.testing.assert_allclose(sliced.result(), plain.result(), atol=1e-12)


# -- degenerate views, choice, errors ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_view_gives_nan_without_warnings(dtype):
    x, y, _ = _views(300, seed=11)
    # 0.1 is not exact in binary: the mean of 7 float64 copies of it is not 0.1 again
    constant = np.full((300, 2, 2), 0.1, dtype=dtype)
    views = [x.astype(dtype), constant, y.astype(dtype)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(cka.linear_cka(x, constant))
        exact = cka.ExactCka(_feature_counts(views))
        _feed(exact, views, [7, 100, 193])
        matrix = exact.result()
        minibatch = cka.MinibatchCka(3, 100)
        _feed(minibatch, views, [100, 100, 100])
        estimate = minibatch.result()
        empty = cka.ExactCka([1, 2]).result()
    for result in (matrix, estimate):
        assert np.all(np.isnan(result[1])) and np.all(np.isnan(result[:, 1]))
        assert np.isfinite(result[0, 2]) and result[0, 0] == result[2, 2] == 1.0
    assert matrix[0, 2] == pytest.approx(cka.linear_cka(x, y), abs=TOLERANCE)
    assert np.all(np.isnan(empty))


def test_choose_picks_exact_up_to_the_limits():
    assert isinstance(cka.choose([4096, 10]), cka.ExactCka)
    chosen = cka.choose([4097, 10], batch_size=128)
    assert isinstance(chosen, cka.MinibatchCka)
    assert (chosen.method, chosen.n_views, chosen.batch_size) == ("minibatch", 2, 128)
    assert cka.choose([100, 200], max_exact=150).method == "minibatch"
    # the exact state is (sum of the features)^2 float64 values
    assert cka.choose([100, 200], max_state_bytes=300**2 * 8).method == "exact"
    assert cka.choose([100, 200], max_state_bytes=300**2 * 8 - 1).method == "minibatch"
    assert cka.choose([4096] * 4).method == "minibatch"  # 16384^2 x 8 bytes: 2 GiB


def test_wrong_blocks_and_damaged_states_are_refused():
    exact = cka.ExactCka([3, 2])
    with pytest.raises(ShapeError, match="one block per view: expected 2, received 1"):
        exact.add([np.zeros((4, 3))])
    with pytest.raises(ShapeError, match="same patterns"):
        exact.add([np.zeros((4, 3)), np.zeros((5, 2))])
    with pytest.raises(ShapeError, match="has 4 features per pattern; expected 2"):
        exact.add([np.zeros((4, 3)), np.zeros((4, 2, 2))])
    with pytest.raises(ShapeError, match="at least 4 patterns; received 3"):
        cka.MinibatchCka(2).add([np.zeros((3, 3)), np.zeros((3, 2))])
    with pytest.raises(ShapeError, match="exact CKA accumulator over the same views"):
        exact.merge(cka.ExactCka([2, 3]))
    with pytest.raises(ShapeError, match="square Gram"):
        cka.hsic1(np.eye(3), np.eye(3))
    state = exact.state()
    with pytest.raises(StoreError, match="'products' should have shape"):
        cka.from_state({**state, "products": np.zeros((4, 4))})
    with pytest.raises(StoreError, match="no 'sums'"):
        cka.ExactCka.from_state({k: v for k, v in state.items() if k != "sums"})
    with pytest.raises(StoreError, match="cannot resume a 'minibatch'"):
        cka.MinibatchCka.from_state(state)
    with pytest.raises(StoreError, match="expected 'exact' or 'minibatch'"):
        cka.from_state({**state, "method": np.array("kernel")})
