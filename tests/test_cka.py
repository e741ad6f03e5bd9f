"""Linear CKA (pipeline/analysis/cka.py): the full-data reference, the unbiased HSIC, and the
exact and minibatch accumulators fed block by block, merged, saved and resumed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis import cka
from pipeline.errors import PatternError, StoreError

TOLERANCE = 1e-6  # accumulators vs linear_cka on the same stored values (float32 or float16)


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
        accumulator.update([v[start : start + size] for v in views])
        start += size


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
    accumulator.update([x, x.copy()])
    np.testing.assert_allclose(accumulator.matrix(), np.ones((2, 2)), atol=1e-6)
    minibatch = cka.MinibatchCka(2, 50)
    _feed(minibatch, [x, x], [50, 50, 50, 50])
    np.testing.assert_allclose(minibatch.matrix(), np.ones((2, 2)), atol=1e-12)


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
    assert exact.matrix()[0, 1] == pytest.approx(base, abs=1e-5)


def test_minibatch_estimator_is_invariant_too():
    x, y, _ = _views(400, seed=3)
    x = x.reshape(400, -1)
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((12, 12)))
    plain, moved = cka.MinibatchCka(2, 100), cka.MinibatchCka(2, 100)
    _feed(plain, [x, y], [100] * 4)
    _feed(moved, [3.5 * (x @ q) + 250.0, y - 40.0], [100] * 4)
    np.testing.assert_allclose(moved.matrix(), plain.matrix(), atol=1e-9)
    far = cka.MinibatchCka(2, 100)  # large means cost no precision either
    _feed(far, [x + 1e5, y - 1e5], [100] * 4)
    np.testing.assert_allclose(far.matrix(), plain.matrix(), atol=1e-9)


# -- the exact accumulator -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_exact_accumulator_in_uneven_blocks_equals_linear_cka(dtype, offset):
    views = [(v + offset).astype(dtype) for v in _views(1000, seed=4)]
    accumulator = cka.ExactCka(_feature_counts(views))
    _feed(accumulator, views, [1, 300, 299, 0, 333, 67])  # sizes that do not divide 1000
    assert accumulator.patterns == 1000
    matrix = accumulator.matrix()
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
    np.testing.assert_allclose(accumulator.matrix(), _reference_matrix(original), atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_exact_merge_and_state_round_trips_are_exact(tmp_path, offset):
    views = [(v + offset).astype(np.float32) for v in _views(900, seed=6)]
    counts = _feature_counts(views)
    first, second, third = cka.ExactCka(counts), cka.ExactCka(counts), cka.ExactCka(counts)
    # disjoint pieces whose first blocks differ: the three references differ
    _feed(first, [v[:250] for v in views], [100, 150])
    _feed(second, [v[250:600] for v in views], [1, 349])
    _feed(third, [v[600:] for v in views], [300])
    assert not np.array_equal(first.state()["reference"], second.state()["reference"])

    np.savez(tmp_path / "second.npz", **second.state())
    with np.load(tmp_path / "second.npz", allow_pickle=False) as saved:
        second = cka.from_state(saved)
    assert isinstance(second, cka.ExactCka)

    merged = cka.ExactCka.from_state(first.state())
    merged.merge(second)
    merged.merge(cka.ExactCka(counts))  # an empty one adds nothing
    merged.merge(third)
    assert merged.patterns == 900
    np.testing.assert_allclose(merged.matrix(), _reference_matrix(views), atol=TOLERANCE)

    into_empty = cka.ExactCka(counts)
    into_empty.merge(first)
    resumed = cka.from_state(into_empty.state())
    _feed(resumed, [v[250:] for v in views], [650])
    np.testing.assert_allclose(resumed.matrix(), merged.matrix(), atol=1e-9)


def test_exact_state_is_plain_arrays():
    accumulator = cka.ExactCka([4, 3])
    accumulator.update([np.ones((5, 4), np.float32), np.arange(15.0).reshape(5, 3)])
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
    accumulator.update([x, y])
    assert accumulator.matrix()[0, 1] == pytest.approx(expected, rel=1e-9)


def test_minibatch_estimate_is_within_002_of_exact():
    views = [v.astype(np.float32) for v in _views(2000, seed=8, widths=(30, 40, 25))]
    exact = cka.ExactCka(_feature_counts(views))
    _feed(exact, views, [2000])
    minibatch = cka.MinibatchCka(3, 256)
    _feed(minibatch, views, [256] * 7 + [208])  # consecutive batches, the last one shorter
    assert minibatch.patterns == 2000 and minibatch.batches == 8
    reference = exact.matrix()
    off_diagonal = reference[~np.eye(3, dtype=bool)]
    assert np.all((off_diagonal > 0.3) & (off_diagonal < 0.9)), reference
    np.testing.assert_allclose(minibatch.matrix(), reference, atol=0.02)


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
    np.testing.assert_allclose(left.matrix(), whole.matrix(), atol=1e-12)


def test_wide_views_are_built_a_slice_of_columns_at_a_time(monkeypatch):
    views = _views(64, seed=10)
    plain = cka.MinibatchCka(3, 32)
    _feed(plain, views, [32, 32])
    monkeypatch.setattr(cka, "_GRAM_COLUMNS", 5)  # several slices per view
    sliced = cka.MinibatchCka(3, 32)
    _feed(sliced, views, [32, 32])
    np.testing.assert_allclose(sliced.matrix(), plain.matrix(), atol=1e-12)


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
        matrix = exact.matrix()
        minibatch = cka.MinibatchCka(3, 100)
        _feed(minibatch, views, [100, 100, 100])
        estimate = minibatch.matrix()
        empty = cka.ExactCka([1, 2]).matrix()
    for result in (matrix, estimate):
        assert np.all(np.isnan(result[1])) and np.all(np.isnan(result[:, 1]))
        assert np.isfinite(result[0, 2]) and result[0, 0] == result[2, 2] == 1.0
    assert matrix[0, 2] == pytest.approx(cka.linear_cka(x, y), abs=TOLERANCE)
    assert np.all(np.isnan(empty))


def test_choose_picks_exact_up_to_the_limit():
    assert isinstance(cka.choose([4096, 10]), cka.ExactCka)
    chosen = cka.choose([4097, 10], batch_size=128)
    assert isinstance(chosen, cka.MinibatchCka)
    assert (chosen.method, chosen.n_views, chosen.batch_size) == ("minibatch", 2, 128)
    assert cka.choose([100, 200], max_exact=150).method == "minibatch"


def test_wrong_blocks_and_damaged_states_are_refused():
    exact = cka.ExactCka([3, 2])
    with pytest.raises(PatternError, match="one block per view: expected 2, received 1"):
        exact.update([np.zeros((4, 3))])
    with pytest.raises(PatternError, match="same patterns"):
        exact.update([np.zeros((4, 3)), np.zeros((5, 2))])
    with pytest.raises(PatternError, match="has 4 features per pattern; expected 2"):
        exact.update([np.zeros((4, 3)), np.zeros((4, 2, 2))])
    with pytest.raises(PatternError, match="at least 4 patterns; received 3"):
        cka.MinibatchCka(2).update([np.zeros((3, 3)), np.zeros((3, 2))])
    with pytest.raises(PatternError, match="exact CKA accumulator over the same views"):
        exact.merge(cka.ExactCka([2, 3]))
    with pytest.raises(PatternError, match="square Gram"):
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
