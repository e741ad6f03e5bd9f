"""Runs written straight through the store's writer, and numpy's answer for every analysis key
computed on the whole array in memory."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store import RunWriter
from pipeline.store.naming import layer_dir

KEYS = (
    "mean",
    "std",
    "min",
    "max",
    "frac_positive",
    "count",
    "nonfinite",
    "channel_mean",
    "channel_std",
    "channel_frac_positive",
    "dead",
    "hist_edges",
    "hist_counts",
    "top_index",
    "top_value",
)


def write_run(
    root: Path,
    layers: Mapping[str, np.ndarray],
    batch: int,
    fmt: str = "npy",
    dtype: str = "float32",
    epochs: list[int] | None = None,
    info: dict[str, Any] | None = None,
    stop: int | None = None,
) -> Path:
    """A run holding ``layers`` (name -> (N, *shape), or (E, N, *shape) with ``epochs``) in
    files of ``batch`` patterns; with ``stop``, only the files below pattern ``stop``."""
    first_arr = next(iter(layers.values()))
    n = first_arr.shape[1] if epochs else first_arr.shape[0]
    records = [
        {
            "index": i,
            "name": name,
            "class": "Dense",
            "shape": list(arr.shape[2:] if epochs else arr.shape[1:]),
            "dir": layer_dir(i, name),
        }
        for i, (name, arr) in enumerate(layers.items())
    ]
    base = {
        "mode": "train" if epochs else "batch",
        "model": "test",
        "fingerprint": "analysis",
        "layers": records,
        "num_patterns": n,
        "patterns": f"random:{n}",
    }
    base.update(info or {})
    with RunWriter(root, base, fmt=fmt, dtype=dtype) as w:
        for e_i, epoch in enumerate(epochs or [None]):
            for first in range(0, stop if stop is not None else n, batch):
                for name, arr in layers.items():
                    data = arr[e_i] if epochs else arr
                    w.write(name, epoch, first, data[first : first + batch])
    return root


def stored(arr: np.ndarray, dtype: str) -> np.ndarray:
    """The values as the store keeps them."""
    return arr.astype(dtype)


def reference(x: np.ndarray, k: int = 9, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Every analysis key from numpy on the whole (N, *shape) array, NaN/Inf left out."""
    n = x.shape[0]
    x64 = x.astype(np.float64)
    ok = np.isfinite(x64)
    xm = np.where(ok, x64, np.nan)
    c = x.shape[-1] if x.ndim > 1 else 1
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["mean"] = np.nanmean(xm, axis=0)
        out["std"] = np.nanstd(xm, axis=0)
        out["min"] = np.nanmin(xm, axis=0)
        out["max"] = np.nanmax(xm, axis=0)
        out["count"] = ok.sum(axis=0)
        out["frac_positive"] = (np.where(ok, x64, 0) > 0).sum(axis=0) / out["count"]
        per = xm.reshape(n, -1, c)
        act = np.nanmean(per, axis=1)
        out["channel_mean"] = np.nanmean(act, axis=0)
        out["channel_std"] = np.nanstd(act, axis=0)
        good = ~np.isnan(act)
        out["channel_frac_positive"] = (np.where(good, act, 0) > 0).sum(axis=0) / good.sum(axis=0)
    out["nonfinite"] = int((~ok).sum())
    # dead: every finite value <= 0 (a channel without any finite value is not called dead)
    seen = ok.reshape(n, -1, c).any(axis=(0, 1))
    out["dead"] = seen & (np.where(ok, x64, -np.inf).reshape(n, -1, c).max(axis=(0, 1)) <= 0)
    finite = x64[ok]
    out["hist_range"] = (finite.min(), finite.max())
    out["finite_values"] = x[np.isfinite(x)]
    top_i, top_v = [], []
    for ch in range(c):
        a = act[:, ch]
        idx = np.flatnonzero(~np.isnan(a))
        order = idx[np.lexsort((idx, -a[idx]))][:k]
        top_i.append(np.pad(order, (0, k - len(order)), constant_values=-1))
        top_v.append(np.pad(a[order], (0, k - len(order)), constant_values=np.nan))
    out["top_index"], out["top_value"] = np.array(top_i), np.array(top_v)
    out["activations"] = act
    if labels is not None:
        classes = np.unique(labels)
        out["classes"] = classes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["class_channel_mean"] = np.array(
                [np.nanmean(act[labels == v], axis=0) for v in classes]
            )
    return out


def check_result(
    got: Mapping[str, np.ndarray], want: Mapping[str, Any], rtol: float = 1e-5
) -> None:
    """Every key of ``got`` against numpy's answer ``want``."""
    assert set(KEYS) <= set(got)
    for key in (
        "mean",
        "std",
        "min",
        "max",
        "frac_positive",
        "channel_mean",
        "channel_std",
        "channel_frac_positive",
        "top_value",
    ):
        scale = np.nanmax(np.abs(want[key])) if np.isfinite(want[key]).any() else 1.0
        np.testing.assert_allclose(
            got[key],
            want[key],
            rtol=rtol,
            atol=rtol * max(scale, 1e-12),
            equal_nan=True,
            err_msg=key,
        )
        assert got[key].shape == want[key].shape, key
    for key in ("count", "dead", "top_index"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert int(got["nonfinite"]) == want["nonfinite"]
    edges = got["hist_edges"]
    assert edges.shape == (65,) and got["hist_counts"].shape == (64,)
    assert edges[0] == want["hist_range"][0] and edges[-1] == want["hist_range"][1]
    np.testing.assert_allclose(edges, np.linspace(*want["hist_range"], 65), rtol=1e-5, atol=1e-6)
    counts, _ = np.histogram(want["finite_values"], bins=edges)
    np.testing.assert_array_equal(got["hist_counts"], counts)
    assert got["hist_counts"].sum() == want["finite_values"].size
    if "classes" in want:
        np.testing.assert_array_equal(got["classes"], want["classes"])
        np.testing.assert_allclose(
            got["class_channel_mean"], want["class_channel_mean"], rtol=rtol, atol=1e-9
        )
