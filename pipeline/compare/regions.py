"""Regions x layers: which layer each brain region prefers, and whether it is the layer the
user named after that region (pure).

The article advises naming layers (``name="V1"``) because it "is very useful when evaluating
and comparing with neuroarchitecture". A layer is *named after* a region when the region's
name is one of the words of the layer's name, compared case-insensitively, with words split at
anything that is not a letter or digit and at nested-layer separators: ``V1``, ``v1_conv``,
``block/it_layer`` and ``my-IT`` name regions V1 and IT; ``v10`` and ``split`` do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


def words(name: str) -> list[str]:
    return _WORD.findall(name.lower())


def named_layer(region: str, layers: Sequence[str]) -> str:
    """The first layer (model order) named after ``region``; "" when none is."""
    wanted = words(region)
    if not wanted:
        return ""
    for layer in layers:
        found = words(layer)
        if any(found[i : i + len(wanted)] == wanted for i in range(len(found))):
            return layer
    return ""


def regions_arrays(comparisons: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Region name -> that region's comparison (``rsa_arrays``' keys, one layer list for all):
    the arrays of ``Run.regions()``. ``agrees`` is 1 when the named layer is the best one (at
    the last epoch of a training run), 0 when it is not, -1 when no layer is named after the
    region."""
    regions = list(comparisons)
    first = comparisons[regions[0]]
    layers = [str(n) for n in first["layers"]]
    training = "epochs" in first
    axis = 1 if training else 0

    def stacked(key: str) -> np.ndarray:
        return np.stack([np.asarray(comparisons[r][key]) for r in regions], axis=axis)

    best = stacked("best_layer")
    named = [named_layer(r, layers) for r in regions]
    last_best = best[-1] if training else best
    agrees = np.array(
        [-1 if not n else int(n == str(b)) for n, b in zip(named, last_best, strict=True)],
        dtype=np.int8,
    )
    out = {
        "regions": np.array(regions),
        "layers": np.array(layers),
        "scores": stacked("score"),
        "ci": stacked("ci"),
        "best_layer": best,
        "best_layer_p": stacked("best_layer_p"),
        "named_layer": np.array(named),
        "agrees": agrees,
    }
    if training:
        out["epochs"] = np.asarray(first["epochs"])
    return out


def summary(arrays: Mapping[str, np.ndarray]) -> str:
    """``V1 -> conv1 (87 %; named V1: agrees); IT -> dense_2 (54 %)``: the last epoch."""
    training = "epochs" in arrays
    best = arrays["best_layer"][-1] if training else arrays["best_layer"]
    frac = arrays["best_layer_p"][-1] if training else arrays["best_layer_p"]
    parts = []
    for i, region in enumerate(arrays["regions"]):
        text = f"{region} -> {best[i] or 'none'}"
        extra = [] if not np.isfinite(frac[i]) else [f"best in {frac[i]:.0%}"]
        if arrays["named_layer"][i]:
            verdict = "agrees" if arrays["agrees"][i] == 1 else "disagrees"
            extra.append(f"named {arrays['named_layer'][i]}: {verdict}")
        parts.append(text + (f" ({'; '.join(extra)})" if extra else ""))
    return "; ".join(parts)
