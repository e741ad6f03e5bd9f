"""RSA statistics (pipeline.compare.comparators / ceiling / bootstrap) against rsatoolbox.

rsatoolbox is the oracle; ours is computed independently with numpy/scipy. Values are
sums of at most a few thousand float64 terms of magnitude <= 1, so agreement to 1e-12 is
what rounding allows; tau-a is a ratio of integers and agrees exactly up to the final
division.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs
from rsatoolbox.rdm import compare as rsa_compare

from pipeline.compare.bootstrap import (
    Bootstrap,
    best_layer_fraction,
    bootstrap,
    draws,
    resample,
)
from pipeline.compare.ceiling import noise_ceiling
from pipeline.compare.comparators import METHODS, compare
from pipeline.errors import ConfigError, ShapeError

THEIRS = {"pearson": "corr"}
TOL = 1e-12


def _theirs(models: np.ndarray, references: np.ndarray, method: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rsa_compare(RDMs(models), RDMs(references), method=THEIRS.get(method, method))


def _rdms(rng: np.random.Generator, n: int, count: int, ties: bool = True) -> np.ndarray:
    k = n * (n - 1) // 2
    base = rng.random(k)
    out = base + 0.7 * rng.random((count, k))
    if ties and count > 1:
        out[1] = np.round(out[1] * 3)  # a model with many tied dissimilarities
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [5, 12, 40])
@pytest.mark.parametrize("count", [1, 4])
@pytest.mark.parametrize("gaps", [False, True])
def test_compare_equals_rsatoolbox(method: str, n: int, count: int, gaps: bool) -> None:
    rng = np.random.default_rng(n * 10 + count)
    models = _rdms(rng, n, 3)
    refs = _rdms(rng, n, count)
    if gaps:  # rsatoolbox needs the same NaN positions in every RDM it is handed
        k = models.shape[1]
        missing = rng.choice(k, max(1, k // 6), replace=False)
        models[:, missing] = np.nan
        refs[:, missing] = np.nan
    ours = compare(models, refs, method)
    assert ours.shape == (3, count)
    np.testing.assert_allclose(ours, _theirs(models, refs, method), rtol=0, atol=TOL)


@pytest.mark.parametrize("method", METHODS)
def test_compare_drops_a_pair_missing_in_either_rdm(method: str) -> None:
    """References with different gaps: each (model, reference) pair leaves out the entries
    missing in either, i.e. rsatoolbox's result on that pair with the joint gaps."""
    rng = np.random.default_rng(3)
    n = 12
    models = _rdms(rng, n, 2)
    refs = _rdms(rng, n, 3)
    k = models.shape[1]
    refs[0, rng.choice(k, 7, replace=False)] = np.nan
    refs[2, rng.choice(k, 11, replace=False)] = np.nan
    models[1, rng.choice(k, 5, replace=False)] = np.nan
    ours = compare(models, refs, method)
    for m in range(2):
        for s in range(3):
            gone = np.isnan(models[m]) | np.isnan(refs[s])
            x, y = models[m].copy(), refs[s].copy()
            x[gone] = np.nan
            y[gone] = np.nan
            assert ours[m, s] == pytest.approx(_theirs(x, y, method)[0, 0], abs=TOL)


def test_tau_a_large_vectors_match_rsatoolbox() -> None:
    """K ~ 10^5 with many ties: the integer numerator recovered from tau-b stays exact."""
    rng = np.random.default_rng(5)
    n = 450
    k = n * (n - 1) // 2
    x = np.round(rng.random(k) * 50)
    y = x + rng.normal(0, 20, k)
    y[::3] = np.round(y[::3])
    ours = compare(x, np.stack([y, np.round(y / 10)]), "tau-a")
    np.testing.assert_allclose(ours, _theirs(x, np.stack([y, np.round(y / 10)]), "tau-a"), atol=TOL)


def test_constant_rdm_scores_zero_as_rsatoolbox() -> None:
    rng = np.random.default_rng(6)
    refs = rng.random((2, 10))
    constant = np.ones((1, 10))
    for method in ("pearson", "spearman", "tau-a"):
        np.testing.assert_allclose(compare(constant, refs, method), 0.0)
        np.testing.assert_allclose(_theirs(constant, refs, method), 0.0)


def test_bad_inputs_raise_our_errors() -> None:
    with pytest.raises(ConfigError, match=r"^method: expected one of .*received 'kendall'"):
        compare(np.ones((1, 3)), np.ones((1, 3)), "kendall")
    with pytest.raises(ShapeError, match="N\\(N-1\\)/2"):
        compare(np.ones((1, 4)), np.ones((1, 4)), "cosine")
    with pytest.raises(ShapeError, match="same number"):
        compare(np.ones((1, 3)), np.ones((1, 6)), "cosine")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [5, 12, 40])
@pytest.mark.parametrize("gaps", [False, True])
def test_noise_ceiling_equals_boot_noise_ceiling(method: str, n: int, gaps: bool) -> None:
    rng = np.random.default_rng(n + 100 * gaps)
    refs = _rdms(rng, n, 5)
    if gaps:
        refs[:, rng.choice(refs.shape[1], max(1, refs.shape[1] // 5), replace=False)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = boot_noise_ceiling(
            RDMs(refs), method=THEIRS.get(method, method), rdm_descriptor="index"
        )
    lower, upper = noise_ceiling(refs, method)
    assert lower == pytest.approx(theirs[0], abs=TOL)
    assert upper == pytest.approx(theirs[1], abs=TOL)
    assert lower < upper


def test_noise_ceiling_of_one_reference_is_nan() -> None:
    lower, upper = noise_ceiling(np.random.default_rng(0).random((1, 10)), "tau-a")
    assert np.isnan(lower) and np.isnan(upper)


def test_resample_is_subsample_pattern() -> None:
    rng = np.random.default_rng(8)
    n = 9
    vectors = rng.random((2, n * (n - 1) // 2))
    picked = np.sort(rng.integers(0, n, n))
    assert np.unique(picked).size < n  # duplicates, so some self-pairs must become NaN
    theirs = RDMs(vectors).subsample_pattern("index", picked).get_vectors()
    np.testing.assert_array_equal(resample(vectors, picked, n), theirs)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("count", [1, 3])
def test_bootstrap_samples_equal_rsatoolbox_on_the_same_draws(method: str, count: int) -> None:
    """Each row of the bootstrap is rsatoolbox's eval_bootstrap statistic for the same drawn
    references and conditions: subsample(rdm), subsample_pattern, mean of compare."""
    rng = np.random.default_rng(9)
    n = 12
    models = _rdms(rng, n, 3)
    refs = _rdms(rng, n, count)
    boot = bootstrap(models, refs, method, 12, 4, n)
    for row, (picked, chosen) in enumerate(draws(4, 12, n, count)):
        sample = RDMs(refs).subsample("index", chosen).subsample_pattern("index", picked)
        expected = [
            np.mean(
                _theirs(
                    RDMs(models[m]).subsample_pattern("index", picked).get_vectors(),
                    sample.get_vectors(),
                    method,
                )
            )
            for m in range(3)
        ]
        np.testing.assert_allclose(boot.scores[row], expected, atol=TOL)


def test_bootstrap_is_seeded_and_reports_progress() -> None:
    rng = np.random.default_rng(10)
    n = 10
    models, refs = _rdms(rng, n, 3), _rdms(rng, n, 4)
    done: list[int] = []
    first = bootstrap(models, refs, "spearman", 30, 7, n, progress=done.append)
    again = bootstrap(models, refs, "spearman", 30, 7, n)
    other = bootstrap(models, refs, "spearman", 30, 8, n)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert not np.array_equal(first.scores, other.scores)
    assert first.scores.shape == (30, 3)
    assert sum(done) == 30


def test_samples_with_fewer_than_three_conditions_are_nan() -> None:
    n = 3
    rng = np.random.default_rng(11)
    boot = bootstrap(rng.random((2, 3)), rng.random((1, 3)), "pearson", 60, 1, n)
    few = [np.unique(p).size < 3 for p, _ in draws(1, 60, n, 1)]
    assert 0 < sum(few) < 60
    np.testing.assert_array_equal(np.isnan(boot.scores[:, 0]), few)


def test_planted_best_model_wins_every_sample() -> None:
    """Model 0 is the references' common truth up to tiny noise, model 1 the truth under
    heavy noise, model 2 unrelated: model 0 is best in every sample and its interval lies
    above the others'."""
    rng = np.random.default_rng(12)
    n = 30
    k = n * (n - 1) // 2
    truth = rng.random(k)
    refs = truth + 0.3 * rng.standard_normal((4, k))
    models = np.stack(
        [truth + 0.01 * rng.standard_normal(k), truth + 2.0 * rng.standard_normal(k), rng.random(k)]
    )
    boot = bootstrap(models, refs, "tau-a", 100, 0, n)
    assert boot.best_fraction(0) == 1.0
    assert best_layer_fraction(boot.scores, 1) == 0.0
    ci = boot.interval(0.95)
    score = compare(models, refs, "tau-a").mean(axis=1)
    assert ci[0, 0] <= score[0] <= ci[0, 1]
    assert ci[0, 0] > ci[1, 1]
    assert ci[0, 0] > ci[2, 1]


def test_interval_and_best_fraction_definitions() -> None:
    scores = np.stack([np.linspace(0, 1, 101), np.full(101, np.nan)], axis=1)
    ci = Bootstrap(scores=scores).interval(0.9)
    np.testing.assert_allclose(ci[0], [0.05, 0.95], atol=1e-12)
    assert np.isnan(ci[1]).all()
    samples = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, 1.0], [np.nan] * 3, [5.0, 5.0, 0.0]])
    # rows: best 1, best 0, left out, tie -> first (0)
    assert best_layer_fraction(samples, 0) == pytest.approx(2 / 3)
    assert best_layer_fraction(samples, 1) == pytest.approx(1 / 3)
    assert np.isnan(best_layer_fraction(np.full((2, 2), np.nan), 0))
    with pytest.raises(ConfigError, match="^level"):
        Bootstrap(scores=scores).interval(95)


def test_draws_resample_references_only_when_several() -> None:
    """The dual bootstrap: with S > 1 each sample draws S references with replacement (so
    most samples repeat some and miss others); with S == 1 the one reference is kept."""
    chosen = [refs for _, refs in draws(3, 200, 10, 5)]
    assert all(r.shape == (5,) and r.min() >= 0 and r.max() < 5 for r in chosen)
    repeated = np.mean([np.unique(r).size < 5 for r in chosen])
    assert repeated > 0.9  # 1 - 5!/5^5 = 0.96 of samples repeat a reference
    counts = np.bincount(np.concatenate(chosen), minlength=5)
    assert counts.min() > 150  # 1000 draws over 5 references, about 200 each
    assert all(np.array_equal(r, [0]) for _, r in draws(3, 20, 10, 1))
    conditions = [p for p, _ in draws(3, 200, 10, 5)]
    assert all(np.all(np.diff(p) >= 0) for p in conditions)
    assert np.mean([np.unique(p).size < 10 for p in conditions]) > 0.9


@pytest.mark.parametrize(("models", "refs", "n"), [(6, 4, 30), (3, 1, 12), (2, 3, 7)])
def test_tau_a_bootstrap_as_matrix_products_equals_sample_by_sample(monkeypatch, models, refs, n):
    """The tau-a fast path (every sample from pair signs weighted by how often each condition
    was drawn) against scoring each resampled vector, with ties in both RDMs."""
    from pipeline.compare import bootstrap as boot

    rng = np.random.default_rng(11)
    k = n * (n - 1) // 2
    x = np.round(rng.normal(size=(models, k)) * 2)  # ties
    y = np.round(rng.normal(size=(refs, k)) * 3)
    fast = boot.bootstrap(x, y, "tau-a", 120, 5, n).scores
    monkeypatch.setattr(boot, "SIGN_BYTES", 0)
    slow = boot.bootstrap(x, y, "tau-a", 120, 5, n).scores
    # the same integers over the same counts: equal to the rounding of one division and mean
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-15)
    assert np.isnan(fast).sum() == np.isnan(slow).sum()
