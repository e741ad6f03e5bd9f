"""Model RDMs streamed from the store against the BLAS limit: ``layer_gram`` +
``rdm_from_gram`` (what ``Run.rdm`` does without a cached Gram, correlation distance) for every
layer of a run of ``rdm_conditions`` patterns x ``rdm_layers`` layers of ``rdm_features``
float32 features, vs one float32 matrix product X X^T of the same size per layer (X in
memory). Ratio = baseline / ours, target >= 0.7.

The warm figure reads files the page cache holds (written just before, then read once
untimed): it measures the computation against BLAS. The cold figure evicts the run's files
from the page cache (``posix_fadvise(DONTNEED)`` after ``os.sync``, no root needed) before
each timed read, so it adds this machine's disk; it is reported, not held to the target."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline.store import RunWriter, open_run
from pipeline.store.grams import gram_budget, layer_gram, rdm_from_gram
from pipeline.store.naming import layer_dir

from .common import fit_to_disk
from .figures import Figure, unavailable
from .measure import folder_bytes, interleaved, seconds
from .sizes import Sizes

log = logging.getLogger(__name__)

FILE_PATTERNS = 256  # patterns per data file, as a capture of this width would write them


def write_rdm_run(out: Path, conditions: int, layers: int, features: int, seed: int = 0) -> Path:
    """A batch run of ``layers`` Dense-like layers of ``features`` float32 features, written
    through the store's writer file by file (never the whole layer in memory)."""
    names = [f"dense_{i}" for i in range(layers)]
    info = {
        "mode": "batch",
        "model": "bench",
        "fingerprint": "rdm-bench",
        "layers": [
            {"index": i, "name": n, "class": "Dense", "shape": [features], "dir": layer_dir(i, n)}
            for i, n in enumerate(names)
        ],
        "num_patterns": conditions,
        "patterns": f"random:{conditions}",
    }
    rng = np.random.default_rng(seed)
    shutil.rmtree(out, ignore_errors=True)
    with RunWriter(out, info, fmt="npy", dtype="float32") as writer:
        for first in range(0, conditions, FILE_PATTERNS):
            count = min(FILE_PATTERNS, conditions - first)
            for name in names:
                block = rng.standard_normal((count, features), dtype=np.float32)
                writer.write(name, None, first, block)
    return out


def _evict(root: Path) -> None:
    """Drop the run's files from the page cache (clean pages only: sync first)."""
    os.sync()
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def rdm_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    n, layers, features = sizes.rdm_conditions, sizes.rdm_layers, sizes.rdm_features
    name = f"model RDMs, {n:,} conditions x {layers} layers of {features:,} features"
    unit = "s"
    target = (">=", 0.7)
    n = fit_to_disk(n, layers * features * 4.0, tmp)
    if n < 2:
        return [unavailable(name, unit, target, "not enough free disk for the run")]
    out = write_rdm_run(tmp / "rdm-run", n, layers, features)
    try:
        run = open_run(out)
        x = np.random.default_rng(1).standard_normal((n, features), dtype=np.float32)

        def ours() -> float:
            def all_layers() -> None:
                for layer in run.layers:
                    gram = layer_gram(run, layer, None, "centered")
                    rdm_from_gram(gram, "correlation", features)

            return seconds(all_layers)

        def cold() -> float:
            _evict(out)
            return ours()

        def blas() -> float:
            return seconds(lambda: [x @ x.T for _ in range(layers)])

        ours(), blas()  # untimed warm-up: checksums verified once, files in the page cache
        warm = interleaved({"blas": blas, "ours": ours}, sizes.repeats)
        cold_t = interleaved({"blas": blas, "ours": cold}, sizes.repeats)
        budget = gram_budget(n)
        fits = n * features * 4 <= budget
        passes = "one read and one pass of products" if fits else "several panels"
        size_note = (
            f"{folder_bytes(out) / 1e6:,.0f} MB of NPY files of {FILE_PATTERNS} patterns; "
            f"budget {budget >> 20} MiB: {passes} per layer"
        )
        return [
            Figure(
                f"{name} (files in the page cache) / float32 X X^T",
                warm["blas"],
                warm["ours"],
                unit,
                warm["blas"] / warm["ours"],
                target,
                note=f"correlation RDMs of every layer vs one X X^T per layer; {size_note}",
            ),
            Figure(
                f"{name} (files evicted from the page cache) / float32 X X^T",
                cold_t["blas"],
                cold_t["ours"],
                unit,
                cold_t["blas"] / cold_t["ours"],
                None,
                note=f"adds reading from this machine's disk; {size_note}",
            ),
        ]
    finally:
        shutil.rmtree(out, ignore_errors=True)
