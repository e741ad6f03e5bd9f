"""CKA over a run's files: the computation (``compute``, and ``accumulate`` over a range of
patterns, what a pool task of ``cka_tasks`` runs), and each layer over the epochs against the
last one (training runs, ``epochs_cka``, computed in the parent after the pool).

Views (one layer at one epoch of one run) are read chunk by chunk over the same patterns and
fed to the accumulator ``method`` picks: with ``auto``, exact when every view has at most
``cka.MAX_EXACT_FEATURES`` features and the exact state fits ``cka.MAX_STATE_BYTES`` (as
``cka.choose``), the unbiased minibatch estimator over consecutive batches of
``cka.DEFAULT_BATCH_SIZE`` patterns for wider views, and the sketch (``cka_sketch``) for views
narrow enough whose exact state is over the budget; ``exact`` or ``sketch`` when asked.
Patterns holding NaN or infinity in any view are left out and counted (``excluded``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..store import Run
from ..store import analysis_files as files
from .cka import (
    DEFAULT_BATCH_SIZE,
    MAX_EXACT_FEATURES,
    MAX_STATE_BYTES,
    MIN_BATCH_ROWS,
    ExactCka,
    MinibatchCka,
    centered_gram,
    gram_cka,
)
from .cka_sketch import DEFAULT_SEED, DEFAULT_SKETCH_SIZE, SketchCka
from .pieces import digest, entries_digest, uniform, used_entries
from .report import AnalysisReport
from .tasks import read_rows

log = logging.getLogger(__name__)

# Few patterns (a training run's watched ones): exact CKA from the n x n Gram matrices of the
# views held in memory, far cheaper than feature-space products of (total features)^2.
GRAM_PATTERNS = 2048
GRAM_BYTES = 256 << 20

View = tuple[Run, str, "int | None"]


def _features(run: Run, layer: str, epoch: int | None) -> int:
    entries = run.chunks(layer, epoch)
    shape = entries[0].shape if entries else tuple(v or 0 for v in run.layer(layer).shape)
    return int(np.prod(shape, dtype=np.int64))


def _views_key(views: Sequence[View], stop: int, mode: str = "auto") -> str:
    """What a CKA file is computed from: the views' files, and ``mode`` unless ``auto``
    (the keys of an analysis made before ``--cka`` existed stay valid)."""
    key = digest(
        [
            (str(r.path), name, ep, entries_digest(used_entries(r, name, ep, stop), stop))
            for r, name, ep in views
        ],
        MAX_EXACT_FEATURES,
        DEFAULT_BATCH_SIZE,
    )
    return key if mode == "auto" else digest(key, mode, DEFAULT_SKETCH_SIZE, DEFAULT_SEED)


def _bounds(views: Sequence[View], first: int, stop: int) -> list[tuple[int, int]]:
    """Patterns first..stop-1 cut where the first view's files are cut."""
    run, name, ep = views[0]
    return [
        (max(first, e.first), min(stop, e.first + e.count))
        for e in used_entries(run, name, ep, stop)
        if e.first + e.count > first
    ]


METHODS = ("auto", "exact", "sketch")  # what the user asks for (``--cka``)


def method(feats: Sequence[int], stop: int, mode: str = "auto") -> str:
    """How to compute CKA of views of ``feats`` features over ``stop`` patterns: ``gram``
    (few patterns: exact, from the Gram matrices), ``exact``, ``sketch`` or ``minibatch``.
    ``auto``: the Gram path, else what ``cka.choose`` picks (exact while every view has at
    most ``MAX_EXACT_FEATURES`` features and the state fits ``MAX_STATE_BYTES``, minibatch for
    wider views), but the sketch where the views are narrow enough and only the exact state
    is over the budget. ``exact`` / ``sketch``: that, whatever the size (the Gram path stays
    when the patterns are few: it is exact and cheaper)."""
    if mode not in METHODS:
        raise ConfigError(f"cka: expected one of {METHODS}, received {mode!r}")
    if stop <= GRAM_PATTERNS and stop * sum(feats) * 8 <= GRAM_BYTES:
        return "gram"
    if mode != "auto":
        return mode
    if max(feats) > MAX_EXACT_FEATURES:  # cka.choose's rule
        return "minibatch"
    return "exact" if sum(feats) ** 2 * 8 <= MAX_STATE_BYTES else "sketch"


def accumulator(kind: str, feats: Sequence[int]) -> ExactCka | MinibatchCka | SketchCka:
    """A fresh accumulator of method ``kind`` (not ``gram``)."""
    if kind == "exact":
        return ExactCka(feats)
    if kind == "sketch":
        return SketchCka(feats)
    return MinibatchCka(len(feats), DEFAULT_BATCH_SIZE)


def accumulate(
    views: Sequence[View],
    first: int,
    stop: int,
    kind: str,
    feats: Sequence[int],
    desc: str,
    quiet: bool,
) -> tuple[ExactCka | MinibatchCka | SketchCka, int]:
    """Patterns first..stop-1 of ``views`` fed chunk by chunk to a fresh accumulator of method
    ``kind``: the accumulator and how many patterns were left out for NaN/Inf."""
    acc = accumulator(kind, feats)
    batch = acc.batch_size if isinstance(acc, MinibatchCka) else 0
    excluded = 0
    waiting: list[list[np.ndarray]] = [[] for _ in views]
    held = 0
    bounds = _bounds(views, first, stop)
    for a, b in tqdm(bounds, desc=desc, unit="chunk", disable=quiet, leave=False):
        blocks = [read_rows(r, name, ep, a, b).reshape(b - a, -1) for r, name, ep in views]
        finite = _finite_rows(blocks)
        excluded += int((~finite).sum())
        if not finite.all():
            blocks = [blk[finite] for blk in blocks]
        if not batch:
            if blocks[0].shape[0]:
                acc.add(blocks)
            continue
        for i, blk in enumerate(blocks):
            waiting[i].append(blk)
        held += blocks[0].shape[0]
        while held >= batch:
            joined = [np.concatenate(w) for w in waiting]
            acc.add([j[:batch] for j in joined])
            waiting = [[j[batch:]] for j in joined]
            held -= batch
    if batch and held >= MIN_BATCH_ROWS:  # a last, shorter batch is still unbiased
        acc.add([np.concatenate(w) for w in waiting])
    return acc, excluded


def output(acc: ExactCka | MinibatchCka | SketchCka, excluded: int) -> dict[str, Any]:
    """The arrays of a CKA file from a finished accumulator."""
    out = {
        "matrix": acc.result(),
        "method": np.array(acc.method),
        "batch_size": np.array(acc.batch_size if isinstance(acc, MinibatchCka) else 0),
        "patterns": np.array(acc.patterns),
        "excluded": np.array(excluded),
    }
    if isinstance(acc, SketchCka):
        out["sketch_size"] = np.array(acc.size)
        out["seed"] = np.array(acc.seed)
    return out


def compute(
    views: Sequence[View], stop: int, desc: str, quiet: bool, mode: str = "auto"
) -> dict[str, Any]:
    """CKA between ``views`` over patterns 0..stop-1: ``matrix``, ``method``, ``batch_size``,
    ``patterns`` (used) and ``excluded`` (left out for NaN/Inf); ``sketch_size`` and ``seed``
    for the sketch."""
    feats = [_features(*v) for v in views]
    kind = method(feats, stop, mode)
    if kind == "gram":
        return from_grams(views, stop)
    acc, excluded = accumulate(views, 0, stop, kind, feats, desc, quiet)
    return output(acc, excluded)


def _finite_rows(blocks: Sequence[np.ndarray]) -> np.ndarray:
    ok = np.ones(blocks[0].shape[0], bool)
    for blk in blocks:
        if blk.dtype.kind == "f":
            ok &= np.isfinite(blk).all(axis=1)
    return ok


def from_grams(views: Sequence[View], stop: int) -> dict[str, Any]:
    """Exact CKA of few patterns: every view read whole, compared through its Gram matrix."""
    blocks = [read_rows(r, name, ep, 0, stop).reshape(stop, -1) for r, name, ep in views]
    ok = _finite_rows(blocks)
    grams = [centered_gram(b[ok]) for b in blocks]
    return {
        "matrix": gram_cka(grams),
        "method": np.array("exact"),
        "batch_size": np.array(0),
        "patterns": np.array(int(ok.sum())),
        "excluded": np.array(int((~ok).sum())),
    }


def keep(
    run: Run, rel: str, key: str, arrays: dict[str, Any], index: dict, report: AnalysisReport
) -> None:
    files.write_arrays(files.folder(run.path) / rel, arrays)
    index[rel] = {"key": key}
    files.write_index(run.path, index)
    report.computed.append(rel)


def fresh(run: Run, rel: str, key: str, index: dict, report: AnalysisReport) -> bool:
    if (index.get(rel) or {}).get("key") == key and (files.folder(run.path) / rel).is_file():
        report.reused.append(rel)
        return True
    return False


def epochs_cka(
    run: Run,
    epochs: Sequence[int | None],
    report: AnalysisReport,
    index: dict,
    quiet: bool,
    mode: str = "auto",
) -> None:
    """``cka-epochs.npz``: each layer's CKA between every epoch and the last one (layers x
    epochs), over the patterns every epoch holds; one pair of views at a time (from their
    Grams when the watched patterns are few)."""
    last = epochs[-1]
    stop = min(report.prefix.get(ep, 0) for ep in epochs)
    if stop < 2:
        return
    names = [n for n in run.layers if all(uniform(run, n, ep) for ep in epochs)]
    views = [(run, name, ep) for name in names for ep in epochs]
    rel, key = "cka-epochs.npz", _views_key(views, stop, mode)
    if not names or fresh(run, rel, key, index, report):
        return
    matrix = np.full((len(names), len(epochs)), np.nan)
    for i, name in enumerate(tqdm(names, desc="cka epochs", disable=quiet, leave=False)):
        for j, ep in enumerate(epochs):
            pair = [(run, name, ep), (run, name, last)]
            matrix[i, j] = compute(pair, stop, "", True, mode)["matrix"][0, 1]
    out = {
        "names": np.array(names),
        "epochs": np.array(epochs, np.int64),
        "matrix": matrix,
        "patterns": np.array(stop),
    }
    keep(run, rel, key, out, index, report)
