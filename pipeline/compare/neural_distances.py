"""An RDM from measured responses, with rsatoolbox's definitions of each distance.

``responses_rdm(responses, distance)`` takes responses (R, N, V): R repeats of N conditions
over V voxels or neurons, and returns the (N, N) float64 RDM, symmetric with a zero diagonal.
The definitions are rsatoolbox's ``calc_rdm`` on a Dataset of R x N observations with
``obs_descriptors`` ``conds`` (the condition) and ``run`` (the repeat), ``descriptor="conds"``:

- ``correlation``: the mean over repeats of each condition, then 1 - Pearson r between
  conditions across voxels. A condition whose mean pattern is constant gives NaN in its row
  and column (no warning).
- ``euclidean``: the mean over repeats, then the squared Euclidean distance divided by V
  (rsatoolbox's "squared euclidean": the mean squared difference per voxel), >= 0.
- ``crossnobis`` (``cv_descriptor="run"``, ``noise=None``: identity noise precision): for each
  repeat r as the test fold, a = the mean of the other repeats, b = repeat r, and
  d_ij = (a_i - a_j) . (b_i - b_j) / V; the mean over the R folds. Unbiased, so it can be
  negative when two conditions do not differ. Needs R >= 2.
- ``auto``: crossnobis when R >= 2, else correlation.

Every distance here is unchanged by subtracting one vector from all patterns, so the grand
mean is removed first: it keeps the Gram-matrix form accurate when responses sit far from 0.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import ConfigError, NeuralDataError


class HasData(Protocol):
    """What ``responses_rdm`` reads of ``neural.Responses``."""

    @property
    def data(self) -> np.ndarray: ...

    @property
    def source(self) -> str: ...


DISTANCES = ("auto", "correlation", "euclidean", "crossnobis")


def responses_rdm(responses: HasData, distance: str = "auto") -> np.ndarray:
    """(N, N) float64 RDM of ``responses.data`` (R, N, V) by ``distance`` (see the module);
    ``responses`` is a ``neural.Responses`` (its ``data`` and ``source``)."""
    if distance not in DISTANCES:
        raise ConfigError(
            f"distance: expected one of {', '.join(DISTANCES)}, received {distance!r}"
        )
    data = np.asarray(responses.data, dtype=np.float64)
    repeats = data.shape[0]
    if distance == "auto":
        distance = "crossnobis" if repeats >= 2 else "correlation"
    if distance == "crossnobis":
        if repeats < 2:
            raise NeuralDataError(
                f"{responses.source}: expected repeats for the crossnobis distance (responses "
                f"of shape (R, N, V) with R >= 2), received shape {data.shape}; give repeated "
                "measurements or use --distance correlation or euclidean"
            )
        rdm = _crossnobis(data)
    else:
        mean = data.mean(axis=0)
        rdm = _correlation(mean) if distance == "correlation" else _euclidean(mean)
    rdm = (rdm + rdm.T) / 2
    np.fill_diagonal(rdm, 0.0)
    return rdm


def _correlation(patterns: np.ndarray) -> np.ndarray:
    centered = patterns - patterns.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", centered, centered))
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = centered / norms[:, None]
        unit[norms == 0] = np.nan
    return 1.0 - unit @ unit.T


def _euclidean(patterns: np.ndarray) -> np.ndarray:
    centered = patterns - patterns.mean(axis=0)
    gram = centered @ centered.T
    squares = np.diagonal(gram)
    return np.maximum(squares[:, None] + squares[None, :] - 2 * gram, 0.0) / patterns.shape[1]


def _crossnobis(data: np.ndarray) -> np.ndarray:
    repeats, _, voxels = data.shape
    data = data - data.mean(axis=(0, 1))
    total = data.sum(axis=0)
    rdm = np.zeros((data.shape[1], data.shape[1]))
    for test in data:
        train = (total - test) / (repeats - 1)
        kernel = train @ test.T
        diagonal = np.diagonal(kernel)
        rdm += diagonal[:, None] + diagonal[None, :] - kernel - kernel.T
    return rdm / (repeats * voxels)
