"""From model RDMs and a target's neural data to the arrays of ``Run.comparison`` (pure).

RSA: every layer against every reference RDM (``scores``), their mean (``score``), the noise
ceiling of the references, a bootstrap interval of ``score`` and how often the best layer
stays best. Encoding: a ridge model per layer and voxel, cross-validated over conditions.
Arrays carry a leading epoch axis for training runs and none for batch runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from .bootstrap import best_layer_fraction, bootstrap
from .ceiling import noise_ceiling
from .comparators import compare, conditions_of
from .encoding import fit_encoding, normalized_median, reliability

log = logging.getLogger(__name__)

K = TypeVar("K")


def condensed(square: np.ndarray) -> np.ndarray:
    """The upper triangle of (..., N, N) RDMs, row-major: (..., K)."""
    n = square.shape[-1]
    rows, cols = np.triu_indices(n, k=1)
    return square[..., rows, cols]


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():  # an all-NaN row (a constant layer) stays NaN quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def best_of(score: np.ndarray) -> int | None:
    """Index of the highest score (NaN ignored); None when every score is NaN."""
    if not np.any(np.isfinite(score)):
        return None
    return int(np.nanargmax(score))


def rsa_arrays(
    models: np.ndarray,
    references: np.ndarray,
    layers: Sequence[str],
    method: str,
    samples: int,
    seed: int,
    epochs: Sequence[int] | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """``models``: (E, L, K) condensed model RDMs (E = 1 for a batch run, ``epochs`` None);
    ``references``: (S, K). The RSA keys of ``Run.comparison``."""
    n_epochs, n_layers, k = models.shape
    conditions = conditions_of(k)
    scores = np.stack([compare(models[e], references, method) for e in range(n_epochs)])
    score = _nanmean(scores, axis=2)
    ceiling = noise_ceiling(references, method)
    ci = np.full((n_epochs, n_layers, 2), np.nan)
    best: list[str] = []
    best_p = np.full(n_epochs, np.nan)
    for e in range(n_epochs):
        b = best_of(score[e])
        best.append("" if b is None else layers[b])
        if samples > 0:
            boot = bootstrap(models[e], references, method, samples, seed + e, conditions, progress)
            ci[e] = boot.interval(0.95)
            if b is not None:
                best_p[e] = best_layer_fraction(boot.scores, b)
    out: dict[str, object] = {
        "layers": np.array(list(layers)),
        "scores": scores,
        "score": score,
        "noise_ceiling": np.array(ceiling, dtype=np.float64),
        "ci": ci,
        "best_layer": np.array(best),
        "best_layer_p": best_p,
    }
    if epochs is None:
        for key in ("scores", "score", "ci", "best_layer", "best_layer_p"):
            out[key] = np.asarray(out[key])[0]
    else:
        out["epochs"] = np.asarray(list(epochs), dtype=np.int64)
    return out


def encoding_arrays(
    gram_of: Callable[[K], np.ndarray],
    keys: Sequence[Sequence[K]],
    responses: np.ndarray,
    repeats: bool,
    seed: int,
    batch: bool,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``gram_of(keys[e][l])``: the (N, N) kernel of layer l at epoch e in condition order,
    loaded one at a time; ``responses`` (R, N, V). The encoding keys of ``Run.comparison``."""
    mean = responses.mean(axis=0)
    r = np.stack(
        [np.stack([_fit(gram_of(key), mean, seed, progress) for key in row]) for row in keys]
    )
    out: dict[str, np.ndarray] = {"encoding": r, "encoding_median": _nanmedian(r, axis=2)}
    if repeats:
        rel = reliability(responses, seed=seed)
        out["reliability"] = rel
        out["encoding_normalized"] = np.array(
            [[normalized_median(per_layer, rel) for per_layer in row] for row in r]
        )
    if batch:
        out = {k: (v if k == "reliability" else v[0]) for k, v in out.items()}
    return out


def _fit(
    gram: np.ndarray, responses: np.ndarray, seed: int, progress: Callable[[int], None] | None
) -> np.ndarray:
    if np.all(np.isfinite(gram)):
        r = fit_encoding(gram, responses, seed=seed).r
    else:  # a layer with non-finite outputs: no model to fit
        r = np.full(responses.shape[1], np.nan)
    if progress is not None:
        progress(1)
    return r
