"""Encoding models (pipeline.compare.encoding): kernel ridge from a layer's Gram matrix with the
penalty chosen per voxel inside the training folds, against scikit-learn's RidgeCV, on planted
data with a known answer, on pure noise, and split-half reliability on data of known
reliability."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.compare.encoding import (
    default_alphas,
    fit_encoding,
    normalized_median,
    outer_folds,
    reliability,
)
from pipeline.errors import ConfigError, NeuralDataError

MEDIAN_SD = 1.2533  # sd of the median of V i.i.d. normal values = 1.2533 sd / sqrt(V)


def _fold_r(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    pc, yc = pred - pred.mean(axis=0), y - y.mean(axis=0)
    return (pc * yc).sum(axis=0) / np.sqrt((pc**2).sum(axis=0) * (yc**2).sum(axis=0))


@pytest.mark.parametrize("features", [200, 12])  # dual > conditions (gram), < (sklearn's cov)
def test_agrees_with_scikit_learn_ridgecv(features: int) -> None:
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(features)
    n, v = 60, 9
    x = rng.normal(size=(n, features)) + 3.0  # an offset the intercept must absorb
    y = x[:, :6] @ rng.normal(size=(6, v)) + rng.normal(size=(n, v)) * np.linspace(0.5, 8, v)
    y[:, 0] += 100.0
    gram = x @ x.T
    alphas = default_alphas(gram, 13)
    enc = fit_encoding(gram, y, folds=5, alphas=alphas, seed=3)
    assert enc.predictions is not None
    rs = []
    for k, test in enumerate(outer_folds(n, 5, seed=3)):
        train = np.setdiff1d(np.arange(n), test)
        model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True)
        pred = model.fit(x[train], y[train]).predict(x[test])
        # same penalty per voxel, chosen by the same leave-one-out error inside the training fold
        np.testing.assert_array_equal(enc.alphas[k], model.alpha_)
        scale = np.abs(pred).max(axis=0)
        assert np.abs(enc.predictions[test] - pred).max(axis=0) / scale == pytest.approx(
            np.zeros(v), abs=1e-8
        )
        rs.append(_fold_r(pred, y[test]))
    np.testing.assert_allclose(enc.r, np.mean(rs, axis=0), rtol=1e-8, atol=1e-10)
    assert len(np.unique(enc.alphas)) > 2  # the voxels' penalties differ: a per-voxel choice


def test_folds_partition_the_conditions_and_follow_the_seed() -> None:
    folds = outer_folds(23, 4, seed=1)
    assert sorted(len(f) for f in folds) == [5, 6, 6, 6]
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(23))
    assert all((np.diff(f) > 0).all() for f in folds)
    again = outer_folds(23, 4, seed=1)
    other = outer_folds(23, 4, seed=2)
    assert all((a == b).all() for a, b in zip(folds, again, strict=True))
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(folds, other, strict=True))


def test_row_shift_and_kernel_scale_do_not_change_the_result() -> None:
    rng = np.random.default_rng(5)
    n, p, v = 50, 80, 6
    x = rng.normal(size=(n, p))
    y = x[:, :3] @ rng.normal(size=(3, v)) + rng.normal(size=(n, v))
    base = fit_encoding(x @ x.T, y, folds=5)
    shifted = x - rng.normal(size=p) * 50.0  # X - 1 r^T: one reference vector subtracted
    moved = fit_encoding(shifted @ shifted.T, y, folds=5)
    np.testing.assert_allclose(moved.r, base.r, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(moved.alphas, base.alphas, rtol=1e-9)
    # the default grid follows the kernel's scale: 1e6 times the kernel, 1e6 times the penalties
    big = fit_encoding(1e6 * (x @ x.T), y, folds=5)
    np.testing.assert_allclose(big.r, base.r, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(big.alphas, 1e6 * base.alphas, rtol=1e-9)


def test_planted_layer_wins_with_the_median_r_its_snr_allows() -> None:
    """responses = X_planted W + noise, signal / noise variance = SNR for every voxel.

    Ceiling: with the true map, corr(prediction, response) = sqrt(SNR / (1 + SNR)), and no
    prediction independent of the held-out noise does better (Cauchy-Schwarz). Finite N:
    ridge does about as well as least squares, whose estimation error adds sigma^2 q to the
    prediction's variance, q = (p + 1) / (n_train - p - 2) (p features + the intercept, Gaussian
    design), so r ~ ceiling / sqrt(1 + q / SNR). Sampling: each fold's r over n_test conditions
    has sd ~ (1 - rho^2) / sqrt(n_test) and bias -rho (1 - rho^2) / (2 n_test); the mean over
    folds has sd (1 - rho^2) / sqrt(N), the median of V voxels 1.2533 / sqrt(V) of that. The
    band is 5 of those sd (plus the bias) around [least squares, ceiling]."""
    rng = np.random.default_rng(0)
    n, p, v, snr, folds = 400, 20, 60, 1.0, 5
    x = rng.normal(size=(n, p))
    w = rng.normal(size=(p, v))
    noise_sd = np.linalg.norm(w, axis=0) / np.sqrt(snr)  # features have unit variance
    y = x @ w + rng.normal(size=(n, v)) * noise_sd
    layers = {
        "wide_unrelated": 1e3 * rng.normal(size=(n, 2000)),
        "planted": x,
        "narrow_unrelated": rng.normal(size=(n, p)),
        "planted_among_2000_others": np.hstack([x, rng.normal(size=(n, 2000))]),
    }
    medians = {
        name: float(np.median(fit_encoding(f @ f.T, y, folds).r)) for name, f in layers.items()
    }
    assert max(medians, key=medians.__getitem__) == "planted", medians

    ceiling = np.sqrt(snr / (1 + snr))
    n_train, n_test = n * (folds - 1) // folds, n // folds
    least_squares = ceiling / np.sqrt(1 + (p + 1) / (n_train - p - 2) / snr)
    sd = MEDIAN_SD * (1 - ceiling**2) / np.sqrt(n * v)
    bias = ceiling * (1 - ceiling**2) / (2 * n_test)
    assert least_squares - bias - 5 * sd <= medians["planted"] <= ceiling + 5 * sd, (
        medians["planted"],
        least_squares,
        ceiling,
    )
    for name in ("wide_unrelated", "narrow_unrelated"):
        assert abs(medians[name]) < 0.1, medians


def test_pure_noise_gives_median_r_near_zero() -> None:
    """Responses independent of the layer: given the training conditions, a fold's prediction is
    fixed and its held-out responses are i.i.d. normal, so the fold's r has mean 0 and variance
    1 / (n_test - 1). The folds share training data, so their r may be correlated: the mean over
    folds has sd at most 1 / sqrt(n_test - 1) (fully correlated). Voxels are independent, so the
    median of V voxels has sd at most 1.2533 / sqrt(V (n_test - 1)); the bound is 4 of those.
    (A pooled r over all folds would sit near -sqrt((folds - 1) / N) = -0.14 here.)"""
    rng = np.random.default_rng(11)
    n, v, folds = 200, 1000, 5
    x = rng.normal(size=(n, 500))
    y = rng.normal(size=(n, v))
    enc = fit_encoding(x @ x.T, y, folds=folds)
    bound = 4 * MEDIAN_SD / np.sqrt(v * (n // folds - 1))
    assert abs(float(np.median(enc.r))) <= bound, (np.median(enc.r), bound)
    assert np.isfinite(enc.r).all()


def test_constant_layer_and_constant_voxel_give_nan() -> None:
    rng = np.random.default_rng(2)
    n = 30
    y = rng.normal(size=(n, 3))
    y[:, 1] = 4.0
    const = np.ones((n, 7)) * 2.5
    enc = fit_encoding(const @ const.T, y, folds=3)
    assert np.isnan(enc.r).all()
    x = rng.normal(size=(n, 40))
    enc = fit_encoding(x @ x.T, y, folds=3)
    assert np.isnan(enc.r[1]) and np.isfinite(enc.r[[0, 2]]).all()


def test_bad_inputs_say_what_was_expected() -> None:
    gram = np.eye(20)
    with pytest.raises(NeuralDataError, match="20"):
        fit_encoding(gram, np.zeros((19, 3)))
    with pytest.raises(NeuralDataError, match="too few"):
        fit_encoding(gram, np.zeros((20, 3)), folds=10)
    with pytest.raises(ConfigError, match="^folds: "):
        fit_encoding(gram, np.zeros((20, 3)), folds=1)
    with pytest.raises(ConfigError, match="^alphas: "):
        fit_encoding(gram, np.zeros((20, 3)), alphas=np.array([1.0, -1.0]))
    y = np.zeros((20, 3))
    y[0, 2] = np.nan
    with pytest.raises(NeuralDataError, match="1 voxel"):
        fit_encoding(gram, y)
    with pytest.raises(NeuralDataError, match="R >= 2"):
        reliability(np.zeros((1, 20, 3)))


def test_reliability_of_two_repeats_is_spearman_brown_of_their_correlation() -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(size=(2, 50, 8)) + rng.normal(size=(1, 50, 8))
    r = np.array([np.corrcoef(data[0, :, j], data[1, :, j])[0, 1] for j in range(8)])
    np.testing.assert_allclose(reliability(data, seed=9), 2 * r / (1 + r), rtol=1e-12)


@pytest.mark.parametrize("repeats", [4, 3])
def test_reliability_matches_the_known_reliability_of_the_mean(repeats: int) -> None:
    """response = signal (variance 1) + noise (variance s2) per repeat: the mean of R repeats
    has reliability 1 / (1 + s2 / R). Halves of a and b repeats correlate with
    rho = 1 / sqrt((1 + s2/a)(1 + s2/b)), estimated over N conditions with sd <=
    (1 - rho^2) / sqrt(N) (one split; the mean over splits is no noisier), carried into the
    reliability by the slope d rel / d rho (from the two forward maps of s2). Median over V
    voxels: 1.2533 / sqrt(V) of that; the band is 5 of those sd (0.005 at R = 3, where plain
    Spearman-Brown of unequal halves would be 0.02 low)."""
    rng = np.random.default_rng(repeats)
    n, v, s2 = 500, 3000, 2.25
    data = rng.normal(size=(1, n, v)) + np.sqrt(s2) * rng.normal(size=(repeats, n, v))
    a, b = repeats // 2, repeats - repeats // 2

    def rho(s: float) -> float:
        return 1 / np.sqrt((1 + s / a) * (1 + s / b))

    def rel(s: float) -> float:
        return 1 / (1 + s / repeats)

    h = 1e-4
    slope = (rel(s2 + h) - rel(s2 - h)) / (rho(s2 + h) - rho(s2 - h))
    tolerance = 5 * MEDIAN_SD * slope * (1 - rho(s2) ** 2) / np.sqrt(n * v)
    got = float(np.median(reliability(data, seed=1)))
    assert abs(got - rel(s2)) <= tolerance, (got, rel(s2), tolerance)


def test_normalized_median() -> None:
    r = np.array([0.2, 0.5, np.nan, 0.3, 0.9])
    rel = np.array([0.25, 0.05, 0.8, 0.36, 0.81])
    # voxel 1 is unreliable, voxel 2 has no r: median of 0.2/0.5, 0.3/0.6, 0.9/0.9
    assert normalized_median(r, rel) == pytest.approx(0.5)
    assert normalized_median(r, rel, min_reliability=0.3) == pytest.approx(0.75)
    assert np.isnan(normalized_median(r, rel, min_reliability=0.9))
