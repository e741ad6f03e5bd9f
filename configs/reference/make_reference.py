"""Synthetic "brain" data for configs/compare.toml (no brain data ships with Passage).

The conditions are the patterns configs/compare.toml watches: the first 6 training patterns of
each class of ``builtin:stripes`` (30 stripe images, class by class). Two made-up regions, 4
made-up subjects each:

- ``v1.npy``: an early visual area, retinotopic. Each subject's RDM is the correlation
  distance between the images' pixels, plus measurement noise;
- ``it.npy``: a category area. Stripes of the same class are near (0.2), horizontal and
  vertical stripes are nearer each other (0.6) than either is to the diagonals, the two
  diagonals near each other (0.6), the checkerboard far from all (1.0); plus noise.

``python configs/reference/make_reference.py [FOLDER]`` writes both (S x N x N float64 .npy,
S = 4 subjects) into FOLDER (default: beside this file); tests/test_compare_config.py checks
that the shipped files are what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipeline.capturing.training.datasets import stripes, watch_indices

PER_CLASS = 6  # [train] watch_per_class of configs/compare.toml
SUBJECTS = 4
# between-class dissimilarity of the category area (classes: horizontal, vertical, diagonal,
# antidiagonal, checker)
CATEGORY = np.array(
    [
        [0.2, 0.6, 0.9, 0.9, 1.0],
        [0.6, 0.2, 0.9, 0.9, 1.0],
        [0.9, 0.9, 0.2, 0.6, 1.0],
        [0.9, 0.9, 0.6, 0.2, 1.0],
        [1.0, 1.0, 1.0, 1.0, 0.2],
    ]
)


def watched() -> tuple[np.ndarray, np.ndarray]:
    """The watched images and their classes, in the run's condition order."""
    x, y = stripes()
    idx = watch_indices(y, PER_CLASS)
    return x[idx].astype(np.float64), y[idx]


def correlation_rdm(features: np.ndarray) -> np.ndarray:
    rdm = 1.0 - np.corrcoef(features)
    return (rdm + rdm.T) / 2  # exactly symmetric (corrcoef's rounding need not be)


def subjects(rdm: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """SUBJECTS noisy copies of ``rdm``: symmetric noise, zero diagonal."""
    out = []
    for _ in range(SUBJECTS):
        e = rng.normal(scale=noise, size=rdm.shape)
        s = rdm + (e + e.T) / 2
        np.fill_diagonal(s, 0.0)
        out.append(s)
    return np.stack(out)


def make(folder: Path) -> list[Path]:
    images, labels = watched()
    rng = np.random.default_rng(23)
    v1 = subjects(correlation_rdm(images.reshape(images.shape[0], -1)), 0.05, rng)
    it = subjects(CATEGORY[labels][:, labels], 0.15, rng)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "v1.npy", folder / "it.npy"]
    for path, rdms in zip(paths, (v1, it), strict=True):
        np.save(path, rdms)
    return paths


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
