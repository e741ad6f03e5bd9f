"""CKA over a run's files: layers x layers (per epoch), each layer over the epochs against the
last one (training runs), and this run's layers x another run's (``against``).

Views (one layer at one epoch of one run) are read chunk by chunk over the same patterns and
fed to the accumulator ``cka.choose`` picks: exact when every view has at most
``cka.MAX_EXACT_FEATURES`` features and the exact state fits ``cka.MAX_STATE_BYTES``, else the
unbiased minibatch estimator over consecutive batches of ``cka.DEFAULT_BATCH_SIZE`` patterns.
Patterns holding NaN or infinity in any view are left out and counted (``excluded``). CKA
results are not resumed piece by piece: an analysis interrupted during CKA computes it again.
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
    MIN_BATCH_ROWS,
    ExactCka,
    centered_gram,
    choose,
    gram_cka,
)
from .pieces import complete_prefix, digest, entries_digest, uniform, used_entries
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


def _views_key(views: Sequence[View], stop: int) -> str:
    return digest(
        [
            (str(r.path), name, ep, entries_digest(used_entries(r, name, ep, stop), stop))
            for r, name, ep in views
        ],
        MAX_EXACT_FEATURES,
        DEFAULT_BATCH_SIZE,
    )


def _bounds(views: Sequence[View], stop: int) -> list[tuple[int, int]]:
    run, name, ep = views[0]
    return [(e.first, min(stop, e.first + e.count)) for e in used_entries(run, name, ep, stop)]


def compute(views: Sequence[View], stop: int, desc: str, quiet: bool) -> dict[str, Any]:
    """CKA between ``views`` over patterns 0..stop-1: ``matrix``, ``method``, ``batch_size``,
    ``patterns`` (used) and ``excluded`` (left out for NaN/Inf)."""
    feats = [_features(*v) for v in views]
    if stop <= GRAM_PATTERNS and stop * sum(feats) * 8 <= GRAM_BYTES:
        return _from_grams(views, stop)
    acc = choose(feats)
    exact = isinstance(acc, ExactCka)
    batch = 0 if exact else acc.batch_size
    excluded = 0
    waiting: list[list[np.ndarray]] = [[] for _ in views]
    held = 0
    bounds = _bounds(views, stop)
    for a, b in tqdm(bounds, desc=desc, unit="chunk", disable=quiet, leave=False):
        blocks = [read_rows(r, name, ep, a, b).reshape(b - a, -1) for r, name, ep in views]
        finite = _finite_rows(blocks)
        excluded += int((~finite).sum())
        if not finite.all():
            blocks = [blk[finite] for blk in blocks]
        if exact:
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
    if not exact and held >= MIN_BATCH_ROWS:  # a last, shorter batch is still unbiased
        acc.add([np.concatenate(w) for w in waiting])
    return {
        "matrix": acc.result(),
        "method": np.array(acc.method),
        "batch_size": np.array(batch),
        "patterns": np.array(acc.patterns),
        "excluded": np.array(excluded),
    }


def _finite_rows(blocks: Sequence[np.ndarray]) -> np.ndarray:
    ok = np.ones(blocks[0].shape[0], bool)
    for blk in blocks:
        if blk.dtype.kind == "f":
            ok &= np.isfinite(blk).all(axis=1)
    return ok


def _from_grams(views: Sequence[View], stop: int) -> dict[str, Any]:
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


def _keep(
    run: Run, rel: str, key: str, arrays: dict[str, Any], index: dict, report: AnalysisReport
) -> None:
    files.write_arrays(files.folder(run.path) / rel, arrays)
    index[rel] = {"key": key}
    files.write_index(run.path, index)
    report.computed.append(rel)


def _fresh(run: Run, rel: str, key: str, index: dict, report: AnalysisReport) -> bool:
    if (index.get(rel) or {}).get("key") == key and (files.folder(run.path) / rel).is_file():
        report.reused.append(rel)
        return True
    return False


def layers_cka(
    run: Run, epochs: Sequence[int | None], report: AnalysisReport, index: dict, quiet: bool
) -> None:
    """``cka.npz`` (``cka/epoch-E.npz``): the run's layers x layers at each epoch."""
    for ep in epochs:
        stop = report.prefix.get(ep, 0)
        if stop < 2 or not run.layers:
            log.info("CKA needs at least 2 patterns; %s holds %d: no cka.npz", run.path, stop)
            continue
        names = [name for name in run.layers if uniform(run, name, ep)]
        if not names:
            continue
        views = [(run, name, ep) for name in names]
        rel, key = files.cka_file(ep), _views_key(views, stop)
        if _fresh(run, rel, key, index, report):
            continue
        out = compute(views, stop, "cka" if ep is None else f"cka epoch {ep}", quiet)
        out["names"] = np.array(names)
        _keep(run, rel, key, out, index, report)


def epochs_cka(
    run: Run, epochs: Sequence[int | None], report: AnalysisReport, index: dict, quiet: bool
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
    rel, key = "cka-epochs.npz", _views_key(views, stop)
    if not names or _fresh(run, rel, key, index, report):
        return
    matrix = np.full((len(names), len(epochs)), np.nan)
    for i, name in enumerate(tqdm(names, desc="cka epochs", disable=quiet, leave=False)):
        for j, ep in enumerate(epochs):
            pair = [(run, name, ep), (run, name, last)]
            matrix[i, j] = compute(pair, stop, "", quiet=True)["matrix"][0, 1]
    out = {
        "names": np.array(names),
        "epochs": np.array(epochs, np.int64),
        "matrix": matrix,
        "patterns": np.array(stop),
    }
    _keep(run, rel, key, out, index, report)


def against_runs(
    run: Run, other: Run, epoch: int | None, report: AnalysisReport, index: dict, quiet: bool
) -> None:
    """``cka-against.npz``: this run's layers x the other run's layers over the same patterns
    (each run at its last recorded epoch, this one at ``epoch``)."""
    mine = (run.info.get("identity") or {}).get("patterns")
    theirs = (other.info.get("identity") or {}).get("patterns")
    if run.num_patterns != other.num_patterns or (mine and theirs and mine != theirs):
        raise ConfigError(
            f"against: expected a run over the same patterns as {run.path} "
            f"({run.num_patterns} from {run.info.get('patterns')!r}), received {other.path} "
            f"({other.num_patterns} from {other.info.get('patterns')!r}); capture the other "
            "model with the same patterns"
        )
    other_ep = other.epochs[-1] if other.epochs else None
    stop = min(report.prefix.get(epoch, 0), complete_prefix(other, other_ep))
    if stop < 2:
        return
    mine_names = [n for n in run.layers if uniform(run, n, epoch)]
    their_names = [n for n in other.layers if uniform(other, n, other_ep)]
    views = [(run, n, epoch) for n in mine_names] + [(other, n, other_ep) for n in their_names]
    rel, key = "cka-against.npz", _views_key(views, stop)
    if not mine_names or not their_names or _fresh(run, rel, key, index, report):
        return
    out = compute(views, stop, "cka against", quiet)
    k = len(mine_names)
    out["matrix"] = out["matrix"][:k, k:]
    out["names"] = np.array(mine_names)
    out["other_names"] = np.array(their_names)
    out["other_run"] = np.array(str(other.path))
    _keep(run, rel, key, out, index, report)
