"""Training datasets (``[train] dataset``): ``file.npz`` with x/y keys, or ``builtin:NAME``.

``builtin:stripes[:N[:SEED]]`` is generated in code (no download): N patterns per class
(default 200) of five classes of 50x50 stripe patterns in [0, 1], deterministic for a seed:

0 ``horizontal``, 1 ``vertical``, 2 ``diagonal`` (down-right), 3 ``antidiagonal``,
4 ``checker``. Each pattern has its own stripe period (4 to 9 pixels), contrast and noise. The
stripes start at the top-left corner (no random phase): the article's model applies its Dense
layers row by row, so a class must show in what each row holds, which an anchored phase gives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import PatternError, SpecError
from ..patterns.arrays import load_npz

log = logging.getLogger(__name__)

STRIPE_CLASSES = ("horizontal", "vertical", "diagonal", "antidiagonal", "checker")
STRIPES_SIZE = 50
STRIPES_PER_CLASS = 200


@dataclass(frozen=True)
class Dataset:
    """Training inputs ``x`` (N, *input_shape), integer labels ``y`` (N,), class names."""

    spec: str
    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return int(self.x.shape[0])


def stripes(per_class: int = STRIPES_PER_CLASS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``per_class`` patterns of each of the five stripe classes, interleaved
    (0, 1, 2, 3, 4, 0, 1, ...), float32 in [0, 1] of shape (5 * per_class, 50, 50)."""
    rng = np.random.default_rng(seed)
    n = per_class * len(STRIPE_CLASSES)
    size = STRIPES_SIZE
    yy, xx = np.mgrid[0:size, 0:size]
    y = np.tile(np.arange(len(STRIPE_CLASSES), dtype=np.int64), per_class)
    period = rng.integers(4, 10, size=n)
    contrast = rng.uniform(0.6, 1.0, size=n)
    noise = rng.normal(0.0, 0.2, size=(n, size, size))
    x = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        p = period[i]

        def wave(coord: np.ndarray, p: int = p) -> np.ndarray:
            return ((coord // (p / 2.0)) % 2).astype(np.float64)

        kind = y[i]
        if kind == 0:
            img = wave(yy)
        elif kind == 1:
            img = wave(xx)
        elif kind == 2:
            img = wave(xx + yy)
        elif kind == 3:
            img = wave(xx - yy + 10 * size)
        else:
            img = np.logical_xor(wave(xx), wave(yy)).astype(np.float64)
        base = 0.5 + (img - 0.5) * contrast[i]
        x[i] = np.clip(base + noise[i], 0.0, 1.0)
    return x, y


def _parse_builtin(spec: str) -> tuple[str, int, int]:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 else ""
    try:
        per_class = int(parts[2]) if len(parts) > 2 else STRIPES_PER_CLASS
        seed = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        raise SpecError(
            f"dataset spec {spec!r}: expected 'builtin:stripes[:N_PER_CLASS[:SEED]]' with integers"
        ) from None
    if len(parts) > 4 or per_class < 1 or seed < 0:
        raise SpecError(
            f"dataset spec {spec!r}: expected 'builtin:stripes[:N_PER_CLASS[:SEED]]' with "
            "N_PER_CLASS >= 1 and SEED >= 0"
        )
    return name, per_class, seed


def _dataset_keys(x_key: str, y_key: str, spec: str) -> Callable[[list[str]], list[str]]:
    """For ``load_npz``: ``[train] x_key`` and ``y_key``, each of them in the archive."""

    def choose(keys: list[str]) -> list[str]:
        for key, what in ((x_key, "x_key"), (y_key, "y_key")):
            if key not in keys:
                raise SpecError(
                    f"dataset {spec!r}: [train] {what} = {key!r} is not in the archive; "
                    f"expected one of {keys}"
                )
        return [x_key, y_key]

    return choose


def load_dataset(
    spec: str,
    input_shapes: Sequence[tuple[int | None, ...]],
    x_key: str = "x",
    y_key: str = "y",
) -> Dataset:
    """Resolve a dataset spec for a one-input model whose input has ``input_shapes[0]``."""
    if spec.startswith("builtin:"):
        name, per_class, seed = _parse_builtin(spec)
        if name != "stripes":
            raise SpecError(f"unknown builtin dataset {name!r}; expected one of: builtin:stripes")
        x, y = stripes(per_class, seed)
        names: tuple[str, ...] = STRIPE_CLASSES
    elif spec.endswith(".npz"):
        x, y = load_npz(Path(spec), _dataset_keys(x_key, y_key, spec), "dataset file")
        names = ()
    else:
        raise SpecError(
            f"dataset spec {spec!r}: expected 'file.npz' (keys [train] x_key/y_key) or "
            "'builtin:stripes'"
        )
    if len(input_shapes) != 1:
        raise PatternError(
            f"dataset {spec!r} feeds one input; the model has {len(input_shapes)} inputs"
        )
    want = input_shapes[0]
    got = tuple(x.shape[1:])
    if len(got) != len(want) or any(
        w is not None and w != g for w, g in zip(want, got, strict=True)
    ):
        raise PatternError(
            f"dataset {spec!r}: x has shape {got} per sample but the model input expects "
            f"{tuple(want)}"
        )
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise PatternError(
            f"dataset {spec!r}: expected numeric x and y, received {x.dtype} and {y.dtype}"
        )
    if x.shape[0] == 0 or y.shape[0] != x.shape[0]:
        raise PatternError(
            f"dataset {spec!r}: expected as many labels as samples (at least one), received "
            f"{x.shape[0]} samples and {y.shape[0]} labels"
        )
    return Dataset(spec, x.astype(np.float32, copy=False), y, names)


def watch_indices(y: np.ndarray, per_class: int) -> list[int]:
    """The first ``per_class`` sample indices of each class (integer labels), in class order;
    for non-integer (e.g. one-hot or regression) targets, the first ``per_class * 5`` samples."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1 or labels.dtype.kind not in "biu":
        return list(range(min(per_class * 5, labels.shape[0])))
    picked: list[int] = []
    for cls in np.unique(labels):
        picked.extend(int(i) for i in np.flatnonzero(labels == cls)[:per_class])
    return picked
