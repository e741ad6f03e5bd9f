"""The whole `passage compare` command, as a user waits for it, on a small run the size of
configs/compare.toml's: 30 watched patterns x the article's 6 layers (all, from 50x75 values
down to 5) x 13 records (epochs 0..12), against two regions of 4 subjects each, 1,000
bootstrap samples per epoch and region, pictures on. Timed as fresh processes, from nothing
kept (``RUN/compare/`` removed) and again with the Gram matrices kept (a second comparison),
beside `passage info RUN` (the start-up every command pays), interleaved."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from pipeline.store import RunWriter
from pipeline.store.naming import layer_dir

from .common import child_env, passage_cmd
from .figures import Figure
from .measure import interleaved
from .sizes import Sizes

CONDITIONS = 30
LAYERS = {
    "dense": (50, 75),
    "my_dense": (50, 50),
    "dense_2": (50, 25),
    "dense_3": (50, 10),
    "flatten": (500,),
    "output": (5,),
}


def _write(out: Path, epochs: int) -> Path:
    info = {
        "mode": "train",
        "model": "bench",
        "fingerprint": "compare-command",
        "layers": [
            {"index": i, "name": n, "class": "Dense", "shape": list(s), "dir": layer_dir(i, n)}
            for i, (n, s) in enumerate(LAYERS.items())
        ],
        "num_patterns": CONDITIONS,
        "patterns": f"random:{CONDITIONS}",
    }
    rng = np.random.default_rng(0)
    with RunWriter(out, info, fmt="npy", dtype="float32") as writer:
        for epoch in range(epochs):
            for name, shape in LAYERS.items():
                writer.write(name, epoch, 0, rng.random((CONDITIONS, *shape), dtype=np.float32))
    return out


def _references(folder: Path) -> list[str]:
    rng = np.random.default_rng(1)
    flags = []
    for region in ("V1", "IT"):
        noise = rng.normal(size=(4, CONDITIONS, CONDITIONS))
        rdms = np.abs(noise + noise.transpose(0, 2, 1))
        for r in rdms:
            np.fill_diagonal(r, 0.0)
        np.save(folder / f"{region}.npy", rdms)
        flags += ["--rdms", f"{region}={folder / f'{region}.npy'}"]
    return flags


def compare_command_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    folder = tmp / "compare-command"
    folder.mkdir(parents=True, exist_ok=True)
    run = _write(folder / "run", sizes.compare_epochs)
    args = [str(run), *_references(folder), "--bootstrap", str(sizes.compare_bootstrap)]
    env = child_env()

    def timed(cmd: list[str], fresh: bool) -> float:
        if fresh:
            shutil.rmtree(run / "compare", ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    compare = passage_cmd("compare", *args)
    subprocess.run(compare, env=env, check=True, capture_output=True)  # warm-up
    times = interleaved(
        {
            "info": lambda: timed(passage_cmd("info", str(run)), False),
            "cold": lambda: timed(compare, True),
            "kept": lambda: timed(compare, False),
        },
        sizes.repeats,
    )
    shape = (
        f"{CONDITIONS} conditions x {len(LAYERS)} layers x {sizes.compare_epochs} epochs, "
        f"2 regions of 4 RDMs, --bootstrap {sizes.compare_bootstrap}, pictures on"
    )
    note = (
        f"{shape}; fresh processes, medians of {sizes.repeats} interleaved; baseline: "
        "`passage info RUN`, the start-up (Python, numpy, the run's manifest) every command pays"
    )
    return [
        Figure(
            f"passage compare, whole command, nothing kept / passage info ({shape})",
            times["info"],
            times["cold"],
            "s",
            times["cold"] / times["info"],
            None,
            note=note,
        ),
        Figure(
            "same, Gram matrices kept (another comparison of the same run)",
            times["info"],
            times["kept"],
            "s",
            times["kept"] / times["info"],
            None,
            note=note,
        ),
    ]
