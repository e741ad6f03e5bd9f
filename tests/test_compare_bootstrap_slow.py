"""Coverage of the bootstrap's 95 % interval on synthetic data with a known answer.

The world: each condition is a latent point u ~ N(0, I_3). A subject's reference RDM is the
squared distances of u scaled per axis by the subject's own factors exp(0.5 z), z ~ N(0, I_3)
(factors 1 when S = 1), plus independent N(0, 1) noise per entry; the model RDM is the
squared distances of u scaled by (1, 0.6, 0.3). The known answer is the population value of
the score (Pearson, mean over references): its limit over many conditions and, for S > 1,
many subjects, computed once on 1,500 conditions (1.1 million pairs; about 0.14 of the
spread at 30 conditions) and 400 subjects. Every draw takes 30 new conditions and S new
subjects, runs ``bootstrap`` and asks whether its 95 % percentile interval holds the known
answer. The subjects' own geometry makes the reference resampling of the dual bootstrap
necessary: without it the S = 16 case covers 0.78 with intervals 0.6 as wide as needed.

With D = 300 independent draws the number of hits is Binomial(300, p); for an exact 95 %
interval its standard deviation is 0.0126. The percentile bootstrap is only approximate here:
at 30 conditions the estimate is biased by about 0.15 of its spread, and the bootstrap over S
subjects sees (S - 1)/S of their variance (about 0.93 coverage at worst for S = 16). We
accept [0.90, 0.985]: 4 standard deviations below 0.95 (that approximation plus chance) and
2.8 above (an interval much too wide fails). The mean width must also match the actual spread
of the estimates over the draws (their central 95 % range) within [0.75, 1.25]. The seeds
are fixed, so the test is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from pipeline.compare.bootstrap import bootstrap
from pipeline.compare.comparators import compare

SCALE = np.array([1.0, 0.6, 0.3])
DRAWS, CONDITIONS, SAMPLES = 300, 30, 200


def _world(
    rng: np.random.Generator, n: int, subjects: int, varied: bool
) -> tuple[np.ndarray, np.ndarray]:
    u = rng.standard_normal((n, 3))
    axes = np.exp(0.5 * varied * rng.standard_normal((subjects, 3)))  # subjects' own geometry
    refs = np.stack([pdist(u * a, "sqeuclidean") for a in axes])
    refs += rng.standard_normal(refs.shape)
    return pdist(u * SCALE, "sqeuclidean")[None, :], refs


@pytest.mark.slow
@pytest.mark.parametrize("subjects", [1, 16])
def test_interval_covers_the_population_value(subjects: int) -> None:
    rng = np.random.default_rng(2024)
    model, refs = _world(rng, 1500, 400 if subjects > 1 else 1, subjects > 1)
    known = compare(model, refs, "pearson").mean()
    hits = 0
    widths = []
    estimates = []
    for draw in range(DRAWS):
        model, refs = _world(rng, CONDITIONS, subjects, subjects > 1)
        lo, hi = bootstrap(model, refs, "pearson", SAMPLES, draw, CONDITIONS).interval(0.95)[0]
        hits += lo <= known <= hi
        widths.append(hi - lo)
        estimates.append(compare(model, refs, "pearson").mean())
    coverage = hits / DRAWS
    spread = np.subtract(*np.quantile(estimates, [0.975, 0.025]))
    assert 0.90 <= coverage <= 0.985, f"coverage {coverage:.3f} of {DRAWS} draws"
    assert 0.75 <= np.mean(widths) / spread <= 1.25, (np.mean(widths), spread)
