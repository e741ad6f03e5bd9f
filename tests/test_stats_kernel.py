"""The compiled statistics pass (``analysis.fused``) against the numpy path it replaces: exactly
equal counts, extremes, positives and histograms; sums within the float32 rounding of their
accumulation order; the fallback, the environment switch, lazy import and the on-disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import write_run

from pipeline import open_run
from pipeline.analysis import analyze, kernel
from pipeline.analysis.histogram import BINS, Binner, count_indices
from pipeline.analysis.partial import Chunk
from pipeline.analysis.reductions import BLOCK_BYTES, LayerReduction
from pipeline.analysis.topk import TopK
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
U = 2.0**-24  # float32 unit roundoff
EXACT = ("count", "min", "max", "frac_positive", "hist_counts", "hist_edges", "dead", "nonfinite")
FAR = 1 << 40  # a chunk offset past kernel.AUTO_MIN_BYTES: auto takes the compiled pass


def reduce(
    monkeypatch, how, x, lo, hi, rows=None, first=0, clean=True, fused=None
) -> LayerReduction:
    """``x`` (n, *shape) through a LayerReduction on path ``how``, in chunks of ``rows``."""
    monkeypatch.setenv(kernel.KERNEL_ENV, how)
    red = LayerReduction(x.shape[1:], lo, hi, k=5, fused=fused)
    step = rows or len(x)
    for a in range(0, len(x), step):
        red.add(Chunk(x[a : a + step], first + a, None, clean))
    return red


def block_rows(x: np.ndarray) -> int:
    return max(1, BLOCK_BYTES // (4 * max(1, int(np.prod(x.shape[1:])))))


def check_same(a: LayerReduction, b: LayerReduction, x: np.ndarray) -> None:
    """``b`` (compiled) against ``a`` (numpy) on the same data ``x``."""
    ra, rb = a.result(), b.result()
    for key in EXACT:
        np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    np.testing.assert_array_equal(a.positive, b.positive)
    # Both paths take d = x - shift in float32 (the same values) and sum at most m = rows of a
    # block in float32, each in its own order: any order's error is <= (m-1) u sum|d|
    # (recursive summation, Higham 4.2), so two orders differ by twice that; the float64
    # merge adds ~1e-16 relative.
    m = min(block_rows(x), len(x))
    n = len(x)
    flat = x.reshape(n, -1).astype(np.float32)
    d = (flat - flat[0]).astype(np.float64)
    dmean = d.mean(axis=0)
    tol_mean = 2 * (m - 1) * U * np.abs(d).mean(axis=0) + 1e-12 * np.abs(ra["mean"]).reshape(-1)
    # var = s2/n - dmean^2: the error of s2/n plus 2 |dmean| times the error of dmean
    tol_var = 2 * (m - 1) * U * ((d * d).mean(axis=0) + 2 * np.abs(dmean) * np.abs(d).mean(axis=0))
    tol_var += 1e-12 * (d * d).mean(axis=0)
    mean_a, mean_b = ra["mean"].reshape(-1), rb["mean"].reshape(-1)
    assert np.all(np.abs(mean_a - mean_b) <= tol_mean)
    var_a, var_b = ra["std"].reshape(-1) ** 2, rb["std"].reshape(-1) ** 2
    assert np.all(np.abs(var_a - var_b) <= tol_var)
    # A channel activation is the float32 sum of P values (numpy: a BLAS matmul, the kernel: in
    # order), divided by P: the two differ by at most 2 (P-1) u mean|x| of the pattern's channel.
    c = x.shape[-1] if x.ndim > 1 else 1
    per = flat.reshape(n, -1, c)
    p = per.shape[1]
    tol_act = (2 * max(p - 1, 0) * U * np.abs(per.astype(np.float64)).mean(axis=1)).max(axis=0)
    tol_act += 1e-12 * np.abs(per).max()
    np.testing.assert_array_less(np.abs(ra["channel_mean"] - rb["channel_mean"]), tol_act + 1e-300)
    spread = np.abs(per.mean(axis=1) - ra["channel_mean"]).max(axis=0)
    tol_cvar = 2 * spread * tol_act + tol_act**2 + 1e-12
    assert np.all(np.abs(ra["channel_std"] ** 2 - rb["channel_std"] ** 2) <= tol_cvar)
    np.testing.assert_array_equal(ra["channel_frac_positive"], rb["channel_frac_positive"])
    # seeded data without near ties: the same patterns are on top, their values within tol_act
    np.testing.assert_array_equal(ra["top_index"], rb["top_index"])
    assert np.all(np.abs(ra["top_value"] - rb["top_value"]) <= tol_act[:, None] + 1e-300)


def data(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "dense-layer":  # the article's first layer, several 1 MiB blocks per chunk
        return np.maximum(rng.standard_normal((300, 50, 75), np.float32) + 0.2, 0)
    if kind == "large-mean":  # mean large against the spread: the shift keeps the digits
        return (rng.standard_normal((260, 7, 5)) * 3 + 100).astype(np.float32)
    if kind == "relu-maps":
        x = np.maximum(rng.standard_normal((90, 6, 5, 4), np.float32), 0)
        x[..., 2] = 0.0  # a dead channel
        return x
    if kind == "vector":
        return rng.standard_normal((513, 12)).astype(np.float32)
    return rng.standard_normal((41,)).astype(np.float32)  # a scalar per pattern


@pytest.mark.parametrize("kind", ["dense-layer", "large-mean", "relu-maps", "vector", "scalar"])
@pytest.mark.parametrize("rows", [None, 37])
def test_the_compiled_pass_matches_the_numpy_path(monkeypatch, kind, rows) -> None:
    x = data(kind, np.random.default_rng(len(kind)))
    lo, hi = float(x.min()), float(x.max())
    a = reduce(monkeypatch, "numpy", x, lo, hi, rows)
    b = reduce(monkeypatch, "numba", x, lo, hi, rows)
    check_same(a, b, x)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(0.0, 1.0), (-0.5, 0.25), (3.0, 4.0), (-1000.0, -999.0), (1e3, 1e6)],
    ids=["above", "both-sides", "all-below", "all-above", "far-below"],
)
def test_a_range_that_does_not_hold_the_data_counts_as_numpy_does(monkeypatch, lo, hi) -> None:
    """A manifest range narrower than the data: the same counts as the numpy path."""
    x = np.random.default_rng(5).standard_normal((120, 40)).astype(np.float32) * 4
    a = reduce(monkeypatch, "numpy", x, lo, hi, rows=50)
    b = reduce(monkeypatch, "numba", x, lo, hi, rows=50)
    np.testing.assert_array_equal(a.hist, b.hist)
    assert b.hist.sum() == x.size


def test_values_far_below_the_range_count_as_numpy_does(monkeypatch) -> None:
    """Bins of -250 .. -192 (64 bins of width 1 over [0, 64]): numpy's float -> uint8 cast
    may wrap them into 0..64, so its counts may hold them in the middle bins; the compiled
    pass must hand such a chunk to numpy, not clamp it into the first bin."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 64, (40, 25)).astype(np.float32)
    x[::3, ::2] = rng.uniform(-250, -193, x[::3, ::2].shape)
    a = reduce(monkeypatch, "numpy", x, 0.0, 64.0, rows=10)
    b = reduce(monkeypatch, "numba", x, 0.0, 64.0, rows=10)
    np.testing.assert_array_equal(a.hist, b.hist)


def test_values_on_the_bin_edges_are_binned_as_binner_index(monkeypatch) -> None:
    lo, hi = -1.7, 2.9
    b = Binner(lo, hi)
    edges = b.edges.astype(np.float32)
    near = np.concatenate(
        [edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf))]
    )
    near = np.clip(near, np.float32(lo), np.float32(hi))
    x = np.resize(near, (8, near.size)).astype(np.float32)  # (8 patterns, 195 values)
    got = reduce(monkeypatch, "numba", x, lo, hi)
    want = count_indices(b.index(x.reshape(-1)))
    np.testing.assert_array_equal(got.hist, want)
    assert got.hist.sum() == x.size and np.all(got.hist[:BINS] > 0)


def test_nonfinite_chunks_give_the_same_results_on_both_settings(monkeypatch) -> None:
    x = np.random.default_rng(2).standard_normal((64, 9, 4)).astype(np.float32)
    x[3, 1, 2], x[7, 0, 0], x[9, 8, 3] = np.nan, np.inf, -np.inf
    lo, hi = float(np.nanmin(x[np.isfinite(x)])), float(x[np.isfinite(x)].max())
    a = reduce(monkeypatch, "numpy", x, lo, hi, rows=20, clean=False)
    b = reduce(monkeypatch, "numba", x, lo, hi, rows=20, clean=False)
    ra, rb = a.result(), b.result()
    for key in ra:  # the masked chunk is numpy's on both settings; the finite ones compiled
        assert ra[key].shape == rb[key].shape, key
    for key in EXACT:
        np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    assert rb["nonfinite"] == 3
    # float32 sums of at most 20 rows around a shift: |error| <= 2 * 19 u mean|x - shift|
    tol = 2 * 19 * U * 2 * np.abs(x[np.isfinite(x)]).max()
    np.testing.assert_allclose(ra["mean"], rb["mean"], rtol=0, atol=tol)


def test_a_bad_choice_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setenv(kernel.KERNEL_ENV, "gpu")
    with pytest.raises(ConfigError, match="PASSAGE_STATS_KERNEL: expected one of auto"):
        kernel.choice()


def test_auto_follows_the_plan_else_the_position(monkeypatch) -> None:
    monkeypatch.setenv(kernel.KERNEL_ENV, "auto")
    assert not kernel.plan(kernel.AUTO_MIN_BYTES - 1) and kernel.plan(kernel.AUTO_MIN_BYTES)
    monkeypatch.setenv(kernel.KERNEL_ENV, "numba")
    assert kernel.plan(0)
    monkeypatch.setenv(kernel.KERNEL_ENV, "numpy")
    assert not kernel.plan(1 << 50)
    x = np.random.default_rng(3).standard_normal((40, 64, 8)).astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    plain = reduce(monkeypatch, "numpy", x, lo, hi).result()
    compiled = reduce(monkeypatch, "numba", x, lo, hi).result()
    assert not all(np.array_equal(plain[k], compiled[k]) for k in plain)  # tell them apart
    for how, first, fused, want in [
        ("auto", 0, None, plain),  # a layer's first bytes
        ("auto", FAR, None, compiled),  # past them
        ("auto", FAR, False, plain),  # the plan wins over the position
        ("auto", 0, True, compiled),
        ("numpy", 0, True, plain),  # the forced choice wins over the plan
        ("numba", 0, False, compiled),
    ]:
        got = reduce(monkeypatch, how, x, lo, hi, first=first, fused=fused).result()
        got["top_index"] -= first
        for key, value in want.items():
            np.testing.assert_array_equal(value, got[key], err_msg=f"{how} {first} {fused} {key}")


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (the choice left unset unless ``env`` sets it)."""
    full = {k: v for k, v in os.environ.items() if k != kernel.KERNEL_ENV}
    full.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300
    )


def test_numba_is_not_imported_by_other_commands_or_a_small_analysis(tmp_path) -> None:
    rng = np.random.default_rng(4)
    run_dir = write_run(tmp_path / "run", {"d": rng.standard_normal((40, 6, 3))}, 16)
    code = (
        "import sys; import pipeline, pipeline.cli, pipeline.rendering, pipeline.analysis\n"
        "from pipeline.cli import main\n"
        "before = 'numba' in sys.modules\n"
        f"pipeline.analysis.analyze({str(run_dir)!r}, cka=False, pictures=False, quiet=True)\n"
        "print(before, 'numba' in sys.modules)"
    )
    out = python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_without_numba_one_warning_then_numpy(tmp_path) -> None:
    code = (
        "import sys, logging, os; sys.modules['numba'] = None  # an install without numba\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "import numpy as np\n"
        "from pipeline.analysis.reductions import LayerReduction\n"
        "from pipeline.analysis.partial import Chunk\n"
        "x = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)\n"
        "reds = []\n"
        "for first in (0, 1 << 40, 1 << 41):  # numpy by choice, then twice by fallback\n"
        "    r = LayerReduction((8,), float(x.min()), float(x.max()))\n"
        "    r.add(Chunk(x, first, None, True)); out = r.result()\n"
        "    out['top_index'] = out['top_index'] - first; reds.append(out)\n"
        "print(all(np.array_equal(reds[0][k], r[k], equal_nan=True) for r in reds for k in r))\n"
        "os.environ['PASSAGE_STATS_KERNEL'] = 'numba'\n"
        "r = LayerReduction((8,), 0.0, 1.0)\n"
        "try:\n    r.add(Chunk(x, 0, None, True))\n"
        "except Exception as e:\n    print(type(e).__name__)\n"
    )
    out = python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "ConfigError"]
    assert out.stderr.count("compiled statistics kernel is unavailable") == 1


CACHED = (
    "import numpy as np\n"
    "from pipeline.analysis import kernel, fused\n"
    "fn = kernel.load(strict=True)\n"
    "print(len(fused.clean_pass.stats.cache_hits), len(fused.clean_pass.stats.cache_misses))\n"
)


def test_a_fresh_process_loads_the_kernel_from_the_cache_beside_the_module() -> None:
    kernel.load(strict=True)  # compiled (and cached) here if no earlier process did
    out = python(CACHED)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"]  # loaded, not compiled


@pytest.mark.slow
def test_concurrent_first_compiles_share_a_fresh_cache(tmp_path) -> None:
    """Two processes compile into an empty cache at once (a fresh clone's pool workers); a
    third loads what they wrote."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    full = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CACHED], stdout=subprocess.PIPE, text=True, env=full
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(o[1] in ("0", "1") for o in outs)
    third = python(CACHED, env)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split() == ["1", "0"]


def test_a_whole_analysis_agrees_on_both_paths(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(6)
    layers = {
        "dense": rng.standard_normal((203, 12)) + 0.3,
        "maps": np.maximum(rng.standard_normal((203, 6, 5, 4)), 0),
    }
    run_dir = write_run(tmp_path / "run", layers, 32)
    results = {}
    for how in ("numpy", "numba"):
        monkeypatch.setenv(kernel.KERNEL_ENV, how)
        report = analyze(run_dir, cka=False, pictures=False, workers=1, quiet=True)
        assert len(report.computed) == 2 and not report.problems
        run = open_run(run_dir)
        results[how] = {name: run.analysis(name) for name in layers}
        for name in layers:  # computed again by the other path
            (run.path / "analysis" / f"{run.layer(name).dir}.npz").unlink()
    for name, arr in layers.items():
        a, b = results["numpy"][name], results["numba"][name]
        for key in EXACT:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        # float32 sums of at most 32 rows (one file) of |x - shift| <= D: two orders differ by
        # <= 2 * 31 u D per value of the mean, 2 * 31 u * 3 D^2 of the variance; a channel
        # activation sums at most 30 values (2 * 29 u D)
        big = 2 * np.abs(arr).max()
        tol = 2 * 31 * U * big
        for key in ("mean", "channel_mean", "top_value"):
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=tol, err_msg=key)
        for key in ("std", "channel_std"):
            np.testing.assert_allclose(a[key] ** 2, b[key] ** 2, rtol=0, atol=3 * tol * big)


@pytest.mark.parametrize("how", ["numpy", "numba"])
def test_top_k_is_exact_whatever_the_order_of_the_chunks(monkeypatch, how) -> None:
    """Only rows that can enter the top K are ranked: ties at the K-th value (a constant
    channel) must still go to the lower pattern index when later patterns arrive first."""
    x = np.random.default_rng(8).standard_normal((120, 4, 3)).astype(np.float32)
    x[..., 1] = 0.5  # every pattern ties on this channel
    lo, hi = float(x.min()), float(x.max())
    monkeypatch.setenv(kernel.KERNEL_ENV, how)
    red = LayerReduction(x.shape[1:], lo, hi, k=5)
    for a in range(100, -1, -20):  # the last patterns first
        red.add(Chunk(x[a : a + 20], a, None, True))
    act = x.astype(np.float64).mean(axis=1)
    want = TopK.empty(3, 5)
    want.add(Chunk(act, 0))
    got = red.result()
    np.testing.assert_array_equal(got["top_index"], want.indices)
    np.testing.assert_array_equal(got["top_index"][1], np.arange(5))
