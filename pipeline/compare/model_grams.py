"""The model side of a comparison: each layer's Gram matrix at each epoch, computed once.

A Gram matrix (``store.grams``) is the long part of a comparison: every data file of the layer
is read. Each (layer, epoch, kind) is one task, run over a process pool (or a Dask cluster) in
parallel over layers, and kept in ``RUN/compare/grams/`` with its key in ``index.json``: a
comparison killed at any moment resumes with the Grams already kept, and every later
comparison over the same patterns (another reference, another method) starts from them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import DamagedDataError
from ..executors import WorkerPool, local_workers, run_each
from ..store import Run, open_run
from ..store.gram_cache import (
    gram_cache_path,
    gram_index_name,
    gram_key,
    read_cached_gram,
    read_gram_index,
    record_gram,
    write_gram_file,
)
from ..store.grams import layer_gram

log = logging.getLogger(__name__)

# Below this many bytes of layer data a process pool costs more (start-up) than it saves.
POOL_MIN_BYTES = 64 << 20


@dataclass(frozen=True)
class GramTask:
    """One Gram to compute: a layer at an epoch, of one kind; ``name`` is its file under
    ``RUN/compare/grams/`` and ``key`` the digest of what it is computed from."""

    layer: str
    epoch: int | None
    kind: str
    name: str
    key: str
    nbytes: int


def compute_gram(run_path: str, task: GramTask, patterns: np.ndarray | None) -> str:
    """Compute one Gram and write its file (a pool worker's task); returns the file's path.
    The caller records its key once it is written."""
    run = open_run(run_path)
    gram = layer_gram(run, task.layer, task.epoch, task.kind, patterns)
    return str(write_gram_file(run.path, task.name, gram))


def plan_grams(
    run: Run,
    layers: Sequence[str],
    epochs: Sequence[int | None],
    kinds: Sequence[str],
    patterns: np.ndarray | None,
) -> list[GramTask]:
    """The Grams that are not kept yet, or were kept from other data or patterns."""
    index = read_gram_index(run.path)
    tasks = []
    for epoch in epochs:
        for layer in layers:
            key = gram_key(run, layer, epoch, patterns)
            nbytes = sum(e.bytes for e in run.chunks(layer, epoch))
            for kind in kinds:
                name = gram_index_name(kind, run.layer(layer).dir, epoch)
                if (
                    index.get(name) == key
                    and gram_cache_path(run.path, kind, run.layer(layer).dir, epoch).is_file()
                ):
                    continue
                tasks.append(GramTask(layer, epoch, kind, name, key, nbytes))
    return tasks


def ensure_grams(
    run: Run,
    layers: Sequence[str],
    epochs: Sequence[int | None],
    kinds: Sequence[str],
    patterns: np.ndarray | None,
    workers: int,
    pool: WorkerPool,
    quiet: bool,
) -> dict[str, str]:
    """Make sure every (layer, epoch, kind) Gram is kept and up to date; returns the layers
    left out because a data file is damaged, each with what is wrong."""
    tasks = plan_grams(run, layers, epochs, kinds, patterns)
    if not tasks:
        return {}
    total = sum(t.nbytes for t in tasks)
    n = (
        pool.workers(workers)
        if pool.remote
        else local_workers(workers, len(tasks), total, POOL_MIN_BYTES)
    )
    run_path = str(run.path.resolve()) if pool.remote else str(run.path)
    problems: dict[str, str] = {}
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="model Grams", disable=quiet, leave=False
    ) as bar:

        def done(task: GramTask, error: BaseException | None) -> None:
            bar.update(task.nbytes)
            if error is not None:  # a DamagedDataError: the layer is left out
                problems.setdefault(task.layer, str(error))
                return
            record_gram(run.path, task.name, task.key)

        run_each(
            pool,
            n,
            tasks,
            compute_gram,
            lambda task: (run_path, task, patterns),
            done,
            (DamagedDataError,),
        )
    return problems


def load_gram(
    run: Run, layer: str, epoch: int | None, kind: str, patterns: np.ndarray | None
) -> np.ndarray:
    """A kept Gram (``ensure_grams`` ran first); computed here if it is somehow not kept."""
    gram = read_cached_gram(run, layer, epoch, kind, patterns)
    return gram if gram is not None else layer_gram(run, layer, epoch, kind, patterns)
