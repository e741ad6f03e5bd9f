"""Encoding figures: a layer of ``encoding_features`` float32 features over
``encoding_conditions`` conditions predicting ``encoding_voxels`` voxels, 5-fold, the penalty
chosen per voxel inside each training fold, by our pipeline (the layer's Gram matrix streamed
from the run's files by ``pipeline.store.grams.layer_gram``, then ``fit_encoding``) and by
scikit-learn's ``RidgeCV(alpha_per_target=True)`` on the same outer folds, the same penalty
grid and the same data: time and peak RSS, each run in a fresh child process.

The layer is a run written by the store's ``RunWriter`` (float32 ``.npy`` files of
``BATCH`` patterns). Ours streams it (``layer_gram`` with its default budget, kind
"shifted", as ``passage compare --responses`` does) and never holds the layer; scikit-learn
needs the whole feature matrix in memory: read with ``Run.load(entry, check=True)`` into one
float32 array, as stored (RidgeCV converts to float64 itself).

``python -m bench.encoding_bench ours|sklearn DIR`` is the child: it times its own work (from
reading the files to the r per voxel, imports left out) and writes ``DIR/<side>.json`` and
``DIR/<side>-r.npy``."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .figures import Figure, unavailable
from .measure import interleaved, peak_rss
from .sizes import Sizes

log = logging.getLogger(__name__)

FOLDS = 5
SEED = 0
BATCH = 128  # patterns per file of the run
LAYER = "features"
ALPHAS = 7  # the grid both sides search: mean eigenvalue x 10^-2 ... 10^4
PLANTED = 64  # features the responses depend on
TIME = "encoding time, ours / scikit-learn RidgeCV"
RSS = "encoding peak RSS, ours / scikit-learn RidgeCV"


def encoding_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    n, p, v = sizes.encoding_conditions, sizes.encoding_features, sizes.encoding_voxels
    shape = f"{n:,} conditions x {p:,} features x {v:,} voxels"
    folder = tmp / "encoding"
    need = n * p * 4
    free = shutil.disk_usage(tmp).free
    if need > 0.8 * free:
        why = f"{need / 1e9:.1f} GB of features do not fit the {free / 1e9:.1f} GB free"
        return [unavailable(f"{TIME}, {shape}", "s", ("<=", 1.0), why)]
    try:
        _write_data(folder, n, p, v)
        ours = _Child("ours", folder)
        theirs = _Child("sklearn", folder)
        log.info(
            "encoding: %d x (ours, scikit-learn) in fresh child processes, %s", sizes.repeats, shape
        )
        med = interleaved({"ours": ours, "sklearn": theirs}, sizes.repeats)
        r_ours = np.load(folder / "ours-r.npy")
        r_theirs = np.load(folder / "sklearn-r.npy")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    gap = float(np.nanmax(np.abs(r_ours - r_theirs)))
    common = (
        f"{shape}, {FOLDS} outer folds, {ALPHAS} penalties per voxel by leave-one-out inside "
        f"each training fold (the same folds and grid on both sides); median r "
        f"{np.nanmedian(r_ours):.3f} (ours) vs {np.nanmedian(r_theirs):.3f}, largest |r "
        f"difference| {gap:.1e}; medians of {sizes.repeats}, interleaved, each a fresh child"
    )
    rss_ours, rss_theirs = float(np.median(ours.peaks)), float(np.median(theirs.peaks))
    return [
        Figure(
            f"{TIME}, {shape}",
            med["sklearn"],
            med["ours"],
            "s",
            med["ours"] / med["sklearn"],
            ("<=", 1.0),
            "below 1: ours faster. Ours: layer_gram (streamed from the run's float32 files, "
            "default budget) + fit_encoding (dual ridge); "
            "scikit-learn: the layer loaded, RidgeCV(alphas, alpha_per_target=True, "
            "fit_intercept=True) fit per outer fold and predicting the held-out conditions; "
            f"both times from reading the files to r per voxel; {common}",
        ),
        Figure(
            f"{RSS}, {shape}",
            rss_theirs / 2**20,
            rss_ours / 2**20,
            "MiB",
            rss_ours / rss_theirs,
            ("<=", 0.1),
            "peak of the child process's RSS (interpreter and imports included): ours holds "
            f"the N^2 Gram + layer_gram's panel (its default budget) + N x V responses; scikit-learn the {need / 2**20:,.0f} MiB "
            "feature matrix, its float64 copies and a features x voxels coefficient matrix "
            "per penalty",
        ),
    ]


class _Child:
    """One fresh child process of a side; returns the seconds it measured, keeps its peak RSS."""

    def __init__(self, side: str, folder: Path) -> None:
        self.side = side
        self.folder = folder
        self.peaks: list[int] = []

    def __call__(self) -> float:
        from .common import child_env

        cmd = [sys.executable, "-m", "bench.encoding_bench", self.side, str(self.folder)]
        peak, elapsed = peak_rss(cmd, env=child_env())
        seconds = json.loads((self.folder / f"{self.side}.json").read_text())["seconds"]
        log.info(
            "encoding: %s %.1f s (%.1f s with start-up), %.0f MiB",
            self.side,
            seconds,
            elapsed,
            peak / 2**20,
        )
        self.peaks.append(peak)
        return float(seconds)


def _write_data(folder: Path, n: int, p: int, v: int) -> None:
    """The layer as a run (standard normal float32, files of ``BATCH`` patterns), responses
    planted on its first ``PLANTED`` features with noise of equal variance (SNR 1), and the
    penalty grid from the centered kernel's mean eigenvalue (trace / N), summed while writing."""
    from pipeline.store import RunWriter
    from pipeline.store.naming import layer_dir

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    info = {
        "mode": "batch",
        "model": "encoding-bench",
        "fingerprint": "encoding-bench",
        "layers": [
            {"index": 0, "name": LAYER, "class": "Dense", "shape": [p], "dir": layer_dir(0, LAYER)}
        ],
        "num_patterns": n,
        "patterns": f"random:{n}",
    }
    rng = np.random.default_rng(SEED)
    planted = min(PLANTED, p)
    weights = rng.standard_normal((planted, v)) / np.sqrt(planted)
    responses = np.empty((n, v))
    squares, sums = 0.0, np.zeros(p)
    with RunWriter(folder / "run", info) as writer:
        for start in range(0, n, BATCH):
            chunk = rng.standard_normal((min(BATCH, n - start), p), dtype=np.float32)
            writer.write(LAYER, None, start, chunk)
            signal = chunk[:, :planted].astype(np.float64) @ weights
            responses[start : start + len(chunk)] = signal + rng.standard_normal(signal.shape)
            squares += float(np.einsum("ij,ij->", chunk, chunk, dtype=np.float64))
            sums += chunk.sum(axis=0, dtype=np.float64)
    np.save(folder / "responses.npy", responses)
    scale = (squares - float(sums @ sums) / n) / n
    np.save(folder / "alphas.npy", scale * np.logspace(-2.0, 4.0, ALPHAS))


def _ours(folder: Path) -> np.ndarray:
    from pipeline.compare.encoding import fit_encoding
    from pipeline.store import open_run
    from pipeline.store.grams import gram_kind, layer_gram

    run = open_run(folder / "run")
    gram = layer_gram(run, LAYER, None, gram_kind("euclidean"))
    responses = np.load(folder / "responses.npy")
    alphas = np.load(folder / "alphas.npy")
    return fit_encoding(gram, responses, folds=FOLDS, alphas=alphas, seed=SEED).r


def _sklearn(folder: Path) -> np.ndarray:
    from sklearn.linear_model import RidgeCV

    from pipeline.compare.encoding import outer_folds
    from pipeline.store import open_run

    run = open_run(folder / "run")
    entries = run.chunks(LAYER)
    width = int(np.prod(run.load(entries[0]).shape[1:]))
    x = np.empty((run.num_patterns, width), dtype=np.float32)
    row = 0
    for entry in entries:
        chunk = run.load(entry, check=True)
        x[row : row + len(chunk)] = chunk.reshape(len(chunk), width)
        row += len(chunk)
        del chunk
    y = np.load(folder / "responses.npy")
    alphas = np.load(folder / "alphas.npy")
    rs = []
    for test in outer_folds(len(x), FOLDS, SEED):
        train = np.setdiff1d(np.arange(len(x)), test)
        model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=True)
        model.fit(x[train], y[train])
        pred, held = model.predict(x[test]), y[test]
        del model
        pc, hc = pred - pred.mean(axis=0), held - held.mean(axis=0)
        rs.append((pc * hc).sum(axis=0) / np.sqrt((pc**2).sum(axis=0) * (hc**2).sum(axis=0)))
    return np.mean(rs, axis=0)


def _child(side: str, folder: Path) -> None:
    work = {"ours": _ours, "sklearn": _sklearn}[side]
    if side == "sklearn":
        import sklearn.linear_model  # noqa: F401  (imports outside the timing)
    import pipeline.compare.encoding  # noqa: F401
    import pipeline.store.grams  # noqa: F401

    start = time.perf_counter()
    r = work(folder)
    seconds = time.perf_counter() - start
    np.save(folder / f"{side}-r.npy", r)
    (folder / f"{side}.json").write_text(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]))
