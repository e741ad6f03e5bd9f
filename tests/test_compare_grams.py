"""Model Grams and RDMs streamed from a run's files (``pipeline.store.grams``, ``Run.rdm``),
against numpy on the whole array, rsatoolbox's ``calc_rdm`` and scipy's ``cdist``."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import rsatoolbox
from analysis_helpers import write_run
from scipy.spatial.distance import cdist

from pipeline.errors import ConfigError, DamagedDataError, NotInRunError, ShapeError
from pipeline.store import grams, open_run
from pipeline.store.gram_cache import (
    gram_cache_path,
    gram_key,
    read_cached_gram,
    write_cached_gram,
)
from pipeline.store.grams import (
    BUDGET_ENV,
    DISTANCES,
    FLOAT32_BLOCK,
    FLOAT32_FEATURES,
    TILE_ROWS,
    gram_kind,
    layer_gram,
    rdm_from_gram,
)

U32 = 2.0**-24  # float32 unit roundoff
# float64 products of d < 2048 terms: errors ~ d * 2**-53 ~ 1e-13 of the values' scale
F64_TOL = 1e-9


def rsa_rdm(x: np.ndarray, distance: str) -> np.ndarray:
    """rsatoolbox's square RDM of the patterns (flattened), computed in float64."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    data = rsatoolbox.data.Dataset(flat)
    rdms = rsatoolbox.rdm.calc_rdm(data, method=distance)
    return rdms.get_matrices()[0]


def numpy_gram(x: np.ndarray, kind: str) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    if kind == "centered":
        flat = flat - flat.mean(axis=1, keepdims=True)
    return flat @ flat.T


def centered_kernel(g: np.ndarray) -> np.ndarray:
    """H G H: what does not depend on a common shift of the rows."""
    h = np.eye(len(g)) - 1 / len(g)
    return h @ g @ h


def data(rng: np.random.Generator, shape: tuple[int, ...], offset: float = 0.0) -> np.ndarray:
    return (rng.normal(size=shape) + offset).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(23)


@pytest.mark.parametrize("fmt", ["npy", "json"])
@pytest.mark.parametrize("budget", [None, 9_000, 30_000])
@pytest.mark.parametrize("tile", [TILE_ROWS, 5])
def test_gram_equals_numpy_on_the_whole_array(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    budget: int | None,
    tile: int,
) -> None:
    # files of 7 patterns (the last one shorter); rows of 60 float64 = 480 bytes: a budget of
    # 9,000 bytes holds 2 files per panel -> many panels and stripes spanning files; tiles of 5
    # rows: products tile by tile inside panels and stripes
    monkeypatch.setattr(grams, "TILE_ROWS", tile)
    x = data(rng, (61, 4, 5, 3), offset=2.0)
    run = open_run(write_run(tmp_path / "run", {"conv": x}, batch=7, fmt=fmt))
    for kind in ("raw", "centered"):
        got = layer_gram(run, "conv", None, kind, budget=budget)
        want = numpy_gram(x, kind)
        np.testing.assert_allclose(got, want, rtol=0, atol=F64_TOL * np.abs(want).max())
        assert np.array_equal(got, got.T)
    shifted = layer_gram(run, "conv", None, "shifted", budget=budget)
    # the rows minus one reference vector: the centered kernel and the distances are the same
    want = centered_kernel(numpy_gram(x, "raw"))
    np.testing.assert_allclose(
        centered_kernel(shifted), want, rtol=0, atol=F64_TOL * np.abs(want).max()
    )


def test_budget_from_the_environment_and_bytes_read(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = data(rng, (50, 30))
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=5))
    file_bytes = sum(e.bytes for e in run.chunks("d"))
    read: list[int] = []
    layer_gram(run, "d", None, "raw", progress=read.append)
    assert sum(read) == file_bytes  # fits the default budget: every file read once
    monkeypatch.setenv(BUDGET_ENV, str(5 * 30 * 8 * 2))  # panels of about two files
    read.clear()
    got = layer_gram(run, "d", None, "raw", progress=read.append)
    assert sum(read) > 2 * file_bytes  # later files read again against each panel
    np.testing.assert_allclose(got, numpy_gram(x, "raw"), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["npy", "json"])
@pytest.mark.parametrize("shape", [(37,), (4, 5, 3), (2, 3, 3, 2)])
def test_rdms_equal_rsatoolbox_and_scipy(
    tmp_path: Path, rng: np.random.Generator, fmt: str, shape: tuple[int, ...]
) -> None:
    x = data(rng, (45, *shape), offset=1.5)
    run = open_run(write_run(tmp_path / "run", {"layer": x}, batch=8, fmt=fmt))
    budget = 3 * 8 * int(np.prod(shape)) * 8  # three files of float64 rows
    features = int(np.prod(shape))
    for distance in ("correlation", "euclidean"):
        gram = layer_gram(run, "layer", None, gram_kind(distance), budget=budget)
        got = rdm_from_gram(gram, distance, features)
        np.testing.assert_allclose(got, rsa_rdm(x, distance), rtol=0, atol=F64_TOL)
        assert np.array_equal(got, got.T) and np.all(np.diag(got) == 0)
        np.testing.assert_allclose(run.rdm("layer", distance), got, rtol=0, atol=F64_TOL)
    flat = x.reshape(len(x), -1).astype(np.float64)
    cosine = rdm_from_gram(layer_gram(run, "layer", None, "raw", budget=budget), "cosine", 0)
    want = cdist(flat, flat, "cosine")
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(cosine, want, rtol=0, atol=F64_TOL)
    np.testing.assert_allclose(run.rdm("layer", "cosine"), cosine, rtol=0, atol=F64_TOL)


@pytest.mark.parametrize(
    ("budget", "tile", "block"),
    [(None, TILE_ROWS, FLOAT32_BLOCK), (None, 16, 1000), (120_000, 16, 700)],
)
def test_float32_products_of_a_wide_layer_within_the_derived_bound(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    budget: int | None,
    tile: int,
    block: int,
) -> None:
    # 2,500 features: float32 products (in blocks of 1,000 or 700 features: summed in float64);
    # the offset of 30 (std 1) is what the centering / shifting must take away before float32
    monkeypatch.setattr(grams, "TILE_ROWS", tile)
    monkeypatch.setattr(grams, "FLOAT32_BLOCK", block)
    features = 2500
    assert features >= FLOAT32_FEATURES
    x = data(rng, (40, features), offset=30.0)
    run = open_run(write_run(tmp_path / "run", {"wide": x}, batch=6))
    c = (min(block, features) + 2) * U32  # |G'_ij - G_ij| <= c ||a_i|| ||a_j||
    corr = rdm_from_gram(layer_gram(run, "wide", None, "centered", budget=budget), "correlation", 0)
    err = np.abs(corr - rsa_rdm(x, "correlation"))
    assert err.max() <= 2 * c
    cos = rdm_from_gram(layer_gram(run, "wide", None, "raw", budget=budget), "cosine", 0)
    flat = x.astype(np.float64)
    want = cdist(flat, flat, "cosine")
    np.fill_diagonal(want, 0)
    assert np.abs(cos - want).max() <= 2 * c
    if budget is None:  # one panel: the reference vector is the mean of all the rows
        euc = rdm_from_gram(layer_gram(run, "wide", None, "shifted"), "euclidean", features)
        norms = np.linalg.norm(flat - flat.mean(axis=0), axis=1)
        bound = c * (norms[:, None] + norms[None, :]) ** 2 / features
        assert np.all(np.abs(euc - rsa_rdm(x, "euclidean")) <= bound)


def test_patterns_subset(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (70, 3, 3, 4))
    run = open_run(write_run(tmp_path / "run", {"c": x}, batch=9))
    # some files wholly, some partly, some not at all
    patterns = np.array([0, 1, 2, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 30, 44, 45, 69])
    for budget in (None, 4 * 36 * 8):
        got = layer_gram(run, "c", None, "centered", patterns=patterns, budget=budget)
        np.testing.assert_allclose(got, numpy_gram(x[patterns], "centered"), rtol=1e-12)
    np.testing.assert_allclose(
        run.rdm("c", "euclidean", patterns=patterns),
        rsa_rdm(x[patterns], "euclidean"),
        rtol=0,
        atol=F64_TOL,
    )
    with pytest.raises(NotInRunError, match="pattern 70 is out of range"):
        layer_gram(run, "c", None, "raw", patterns=np.array([3, 70]))
    with pytest.raises(ShapeError, match="patterns: expected sorted unique"):
        layer_gram(run, "c", None, "raw", patterns=np.array([5, 3]))


def test_missing_patterns_named(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (30, 8))
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=10, stop=20))
    np.testing.assert_allclose(
        layer_gram(run, "d", None, "raw", patterns=np.arange(20)), numpy_gram(x[:20], "raw")
    )
    with pytest.raises(NotInRunError, match="pattern 20 of layer 'd'"):
        layer_gram(run, "d", None, "raw")


def test_training_run_epochs(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (3, 25, 6, 2))  # epochs x patterns x shape
    run = open_run(write_run(tmp_path / "run", {"h": x}, batch=4, epochs=[1, 4, 9]))
    for i, epoch in enumerate([1, 4, 9]):
        got = run.rdm("h", "correlation", epoch=epoch)
        np.testing.assert_allclose(got, rsa_rdm(x[i], "correlation"), rtol=0, atol=F64_TOL)
    np.testing.assert_array_equal(run.rdm("h"), run.rdm("h", epoch=9))
    with pytest.raises(NotInRunError, match="epoch 2 is not in run"):
        run.rdm("h", epoch=2)


def test_nonfinite_patterns_give_nan_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (33, 12), offset=4.0)
    x[2, 5] = np.nan  # in the first panel: must not spoil the shifted reference vector
    x[20, 0] = np.inf
    bad = np.array([2, 20])
    keep = np.setdiff1d(np.arange(33), bad)
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=5))
    for distance in DISTANCES:
        for budget in (None, 10 * 12 * 8):
            gram = layer_gram(run, "d", None, gram_kind(distance), budget=budget)
            assert np.isnan(gram[bad]).all() and np.isnan(gram[:, bad]).all()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = rdm_from_gram(gram, distance, 12)
            assert np.isnan(got[bad]).all() and np.isnan(got[:, bad]).all()
            sub = got[np.ix_(keep, keep)]
            if distance == "cosine":
                flat = x[keep].astype(np.float64)
                want = cdist(flat, flat, "cosine")
                np.fill_diagonal(want, 0)
            else:
                want = rsa_rdm(x[keep], distance)
            np.testing.assert_allclose(sub, want, rtol=0, atol=F64_TOL)


def test_float32_overflow_gives_nan_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (10, 2500))
    x[4] *= 3e19  # finite, but its squares summed overflow float32
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=3))
    gram = layer_gram(run, "d", None, "raw")
    assert np.isnan(gram[4]).all() and np.isnan(gram[:, 4]).all()
    keep = np.arange(10) != 4
    want = numpy_gram(x[keep], "raw")
    c = (2500 + 2) * U32
    norms = np.sqrt(np.diag(want))
    assert np.all(np.abs(gram[np.ix_(keep, keep)] - want) <= c * np.outer(norms, norms))


def test_zero_norm_patterns_give_nan_without_warnings(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = data(rng, (12, 2500))  # float32 products: the constant row must still be exact zeros
    x[3] = 0.1  # constant: no correlation
    x[7] = 0.0  # zero: no correlation, no cosine
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = run.rdm("d", "correlation")
        cos = run.rdm("d", "cosine")
        euc = run.rdm("d", "euclidean")
    assert np.isnan(corr[[3, 7]]).all() and np.isnan(corr[:, [3, 7]]).all()
    assert np.isnan(cos[7]).all() and np.isnan(cos[:, 7]).all()
    assert np.isfinite(np.delete(cos, 7, axis=0)[:, np.arange(12) != 7]).all()
    assert np.isfinite(euc).all() and np.all(np.diag(euc) == 0)
    ok = [i for i in range(12) if i not in (3, 7)]
    assert np.all(np.diag(corr)[ok] == 0)


def test_peak_memory_bounded_by_gram_budget_and_a_file(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    n, features, batch = 300, 1500, 10  # float64 products: rows of 12,000 bytes
    x = data(rng, (n, features))
    run = open_run(write_run(tmp_path / "run", {"d": x}, batch=batch))
    row = features * 8
    budget = 12 * row  # the layer is 25 times the budget
    layer_bytes = n * row
    tile = min(TILE_ROWS, n) ** 2 * 8
    file_rows = batch * row  # one file, in the product's dtype
    bound = n * n * 8 + budget + tile + 3 * file_rows + (256 << 10)
    assert layer_bytes > bound  # holding the layer could not pass
    tracemalloc.start()
    try:
        got = layer_gram(run, "d", None, "centered", budget=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= bound, (peak, bound)
    np.testing.assert_allclose(got, numpy_gram(x, "centered"), rtol=1e-10, atol=1e-9)


def test_cache_used_only_while_its_key_matches(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (20, 9))
    path = write_run(tmp_path / "run", {"d": x}, batch=6)
    run = open_run(path)
    true = run.rdm("d", "euclidean")
    assert read_cached_gram(run, "d", None, "shifted", None) is None
    planted = np.eye(20) * 9.0  # every distance (9 + 9) / 9 = 2: not the layer's
    written = write_cached_gram(run, "d", None, "shifted", None, planted)
    assert written == gram_cache_path(path, "shifted", run.layer("d").dir, None)
    assert written == path / "compare/grams/shifted" / f"{run.layer('d').dir}.npy"
    np.testing.assert_array_equal(read_cached_gram(run, "d", None, "shifted", None), planted)
    got = run.rdm("d", "euclidean")
    assert np.all(got[~np.eye(20, dtype=bool)] == 2.0)
    # the same patterns named explicitly: the same key
    assert gram_key(run, "d", None, np.arange(20)) == gram_key(run, "d", None, None)
    # another kind, other patterns: not this file
    np.testing.assert_allclose(run.rdm("d", "correlation"), rsa_rdm(x, "correlation"), atol=1e-9)
    sub = np.arange(0, 20, 2)
    assert read_cached_gram(run, "d", None, "shifted", sub) is None
    np.testing.assert_allclose(
        run.rdm("d", "euclidean", patterns=sub), rsa_rdm(x[sub], "euclidean"), atol=1e-9
    )
    # as many patterns, other ones: another key
    write_cached_gram(run, "d", None, "shifted", np.arange(10), np.eye(10))
    assert read_cached_gram(run, "d", None, "shifted", np.arange(10, 20)) is None
    np.testing.assert_allclose(
        run.rdm("d", "euclidean", patterns=np.arange(10, 20)),
        rsa_rdm(x[10:], "euclidean"),
        atol=1e-9,
    )
    # the layer's data rewritten (new checksums): the cache file is stale
    y = data(rng, (20, 9))
    write_run(path, {"d": y}, batch=6)
    rerun = open_run(path)
    assert read_cached_gram(rerun, "d", None, "shifted", None) is None
    np.testing.assert_allclose(rerun.rdm("d", "euclidean"), rsa_rdm(y, "euclidean"), atol=1e-9)
    assert not np.allclose(rerun.rdm("d", "euclidean"), true)


def test_training_cache_paths_and_damaged_cache(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (2, 10, 4))
    path = write_run(tmp_path / "run", {"d": x}, batch=5, epochs=[0, 3])
    run = open_run(path)
    written = write_cached_gram(run, "d", 3, "raw", None, np.eye(10))
    assert written == path / "compare/grams/raw" / run.layer("d").dir / "epoch-00003.npy"
    assert read_cached_gram(run, "d", 0, "raw", None) is None
    written.write_bytes(b"not an npy file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cached_gram(run, "d", 3, "raw", None) is None


def test_damaged_file_raises(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, (20, 9))
    path = write_run(tmp_path / "run", {"d": x}, batch=5)
    run = open_run(path)
    target = path / run.chunks("d")[2].path
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DamagedDataError, match="checksum"):
        layer_gram(run, "d", None, "raw")


def test_option_errors_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^distance: expected one of correlation, euclidean"):
        gram_kind("manhattan")
    with pytest.raises(ConfigError, match=r"^distance: "):
        rdm_from_gram(np.eye(3), "spearman", 3)
    with pytest.raises(ShapeError, match=r"^gram: expected a square"):
        rdm_from_gram(np.ones((2, 3)), "cosine", 3)
