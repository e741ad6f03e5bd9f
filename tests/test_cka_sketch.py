"""The randomized CKA sketch (pipeline/analysis/cka_sketch.py) against the exact values on the
same planted views, over many seeds: the stated error bound, unbiasedness, merge and resume.

How the checks are sized. Each check of a mean uses S = 400 independent seeds: the mean of S
errors lies within 4.5 of its standard errors (empirical sd / sqrt(S)) of its expectation with
probability 1 - 7e-6 (normal approximation, fine at S = 400 for these bounded-kurtosis sums);
about 20 such checks make this file's false-failure probability below 2e-4 if the code is
right. A spread check allows 1.2 times the stated bound: the sample sd of 400 draws is within
10% of the true sd beyond 4 standard deviations of its own for kurtosis up to ~9.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.analysis import cka, cka_sketch
from pipeline.analysis.cka_sketch import SketchCka, cka_sd_bound, frobenius_sd_bound
from pipeline.errors import ShapeError, StoreError

SEEDS = 400
K = 16  # small on purpose: errors large enough to measure against the bound
WIDTHS = (96, 64, 48)
Z = 4.5
PAIRS = ((0, 1), (0, 2), (1, 2))


def _planted(n: int, rank: int, noise: float, seed: int = 1) -> list[np.ndarray]:
    """Views of a shared latent of ``rank`` directions (decaying scales) drifting from view to
    view, plus noise and an offset: CKA well inside (0, 1); rank 1 nearly reaches the bound."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, rank)) * np.geomspace(1.0, 0.3, rank)
    views = []
    for width in WIDTHS:
        mixed = latent @ rng.standard_normal((rank, width))
        views.append((mixed + noise * rng.standard_normal((n, width)) + 1.0).astype(np.float32))
        latent = latent + 0.5 * rng.standard_normal(latent.shape)
    return views


def _exact_squares(views: list[np.ndarray]) -> np.ndarray:
    """||Xc_i^T Xc_j||_F^2 in float64 on all the data."""
    xs = [v.astype(np.float64) - v.mean(axis=0, dtype=np.float64) for v in views]
    return np.array([[np.sum((a.T @ b) ** 2) for b in xs] for a in xs])


def _draws(views: list[np.ndarray], size: int = K):
    """Per seed: the Frobenius estimates, the CKA estimate, and the biased same-R self terms."""
    frob, matrices, same = [], [], []
    for seed in range(SEEDS):
        acc = SketchCka(WIDTHS, size, seed)
        acc.add(views)
        frob.append(acc.frobenius())
        matrices.append(acc.result())
        same.append([acc._inner.centered_square_norm(2 * i, 2 * i) for i in range(len(views))])
    return np.array(frob), np.array(matrices), np.array(same)


@pytest.fixture(scope="module")
def rank_one():
    views = _planted(1500, 1, 0.05)
    return views, _exact_squares(views), *_draws(views)


@pytest.fixture(scope="module")
def rank_four():
    views = _planted(1500, 4, 0.3)
    return views, _exact_squares(views), *_draws(views)


@pytest.mark.parametrize("data", ["rank_one", "rank_four"])
def test_every_frobenius_estimate_is_unbiased_within_the_stated_sd(data, request):
    _, exact, frob, _, _ = request.getfixturevalue(data)
    relative = frob / exact - 1.0  # (S, V, V)
    mean, sd = relative.mean(axis=0), relative.std(axis=0, ddof=1)
    np.testing.assert_array_less(np.abs(mean), Z * sd / np.sqrt(SEEDS))  # unbiased
    np.testing.assert_array_less(sd, 1.2 * frobenius_sd_bound(K))  # within the bound
    if data == "rank_one":  # the bound is nearly reached (not vacuous): self terms at ~0.9
        assert np.diagonal(sd).min() > 0.6 * frobenius_sd_bound(K)


def test_the_same_sketch_on_both_sides_would_be_biased(rank_four):
    """Why two sketches per view: ||R^T M R||_F^2 overestimates by about rank / k."""
    _, exact, _, _, same = rank_four
    relative = same / np.diagonal(exact) - 1.0
    assert (relative.mean(axis=0) > Z * relative.std(axis=0, ddof=1) / np.sqrt(SEEDS)).all()


@pytest.mark.parametrize("data", ["rank_one", "rank_four"])
def test_cka_errors_within_the_stated_bound(data, request):
    views, exact, _, matrices, _ = request.getfixturevalue(data)
    norms = np.sqrt(np.diagonal(exact))
    truth = exact / np.outer(norms, norms)
    reference = cka.ExactCka(WIDTHS)
    reference.add(views)
    np.testing.assert_allclose(reference.result(), truth, atol=1e-6)  # float32 products
    sigma = frobenius_sd_bound(K)
    for i, j in PAIRS:
        errors = matrices[:, i, j] - truth[i, j]
        se = errors.std(ddof=1) / np.sqrt(SEEDS)
        # bias: second order, at most 2 sigma^2 relative (loose; measured ~0 with the
        # geometric mean of the cross pairs), plus the sampling error of the mean
        assert abs(errors.mean()) <= Z * se + 2 * sigma**2 * truth[i, j]
        assert errors.std(ddof=1) <= 1.2 * cka_sd_bound(K) * truth[i, j]
        assert abs(errors.mean()) <= Z * se + 0.01  # and in fact (nearly) unbiased
    assert (matrices >= 0).all() and (matrices <= 1).all()
    np.testing.assert_array_equal(matrices[:, [0, 1, 2], [0, 1, 2]], 1.0)


def test_narrow_views_are_sketched_exactly():
    """Views of at most k features get one feature per bucket: a signed permutation, exact."""
    views = _planted(700, 3, 0.4)
    sketch, exact = SketchCka(WIDTHS, 128, 5), cka.ExactCka(WIDTHS)
    sketch.add(views)
    exact.add(views)
    np.testing.assert_allclose(sketch.result(), exact.result(), atol=1e-6)
    assert sketch.patterns == 700


def test_merge_in_any_order_and_resume_from_a_saved_state(tmp_path):
    views = _planted(900, 4, 0.3)
    whole = SketchCka(WIDTHS, 24, 7)
    whole.add(views)
    parts = []
    for a, b in ((0, 250), (250, 600), (600, 900)):
        part = SketchCka(WIDTHS, 24, 7)
        part.add([v[a:b] for v in views])
        parts.append(part)
    forward, backward = SketchCka(WIDTHS, 24, 7), SketchCka(WIDTHS, 24, 7)
    for part in parts:
        forward.merge(part)
    for part in reversed(parts):
        backward.merge(part)
    # float32 products of different blocks and references: ~1e-7 apart, as ExactCka's
    np.testing.assert_allclose(forward.result(), whole.result(), atol=1e-6)
    np.testing.assert_allclose(backward.result(), forward.result(), atol=1e-12)
    path = tmp_path / "state.npz"
    np.savez(path, **forward.state())
    with np.load(path) as saved:
        again = cka_sketch.from_state(saved)
    assert isinstance(again, SketchCka) and (again.size, again.seed) == (24, 7)
    np.testing.assert_array_equal(again.result(), forward.result())  # bit for bit
    np.testing.assert_array_equal(again.frobenius(), forward.frobenius())


def test_zero_variance_views_and_refusals():
    views = _planted(300, 2, 0.3)
    views[1] = np.full_like(views[1], 0.1)
    acc = SketchCka(WIDTHS, 16, 0)
    assert np.isnan(acc.result()).all()
    acc.add(views)
    result = acc.result()
    assert np.isnan(result[1]).all() and np.isnan(result[:, 1]).all()
    assert result[0, 2] == pytest.approx(cka.linear_cka(views[0], views[2]), abs=0.5)
    with pytest.raises(ShapeError, match="same views, size and seed"):
        acc.merge(SketchCka(WIDTHS, 16, 1))
    with pytest.raises(ShapeError, match="has 5 features per pattern; expected 64"):
        acc.add([views[0], views[1][:, :5], views[2]])
    state = acc.state()
    with pytest.raises(StoreError, match="sketched views of"):
        SketchCka.from_state({**state, "view_features": np.array([96, 64, 8])})
    with pytest.raises(StoreError, match="method 'sketch' cannot resume a 'exact'"):
        cka.ExactCka.from_state(state)
