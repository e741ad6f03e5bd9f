"""CKA in the analyze pool (pipeline/analysis/cka_tasks.py): pattern ranges computed by the
workers beside the statistics and merged in float64 here, against one process and numpy; the
ranges an interrupted analysis kept are resumed; ``--cka sketch`` end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from analysis_helpers import write_run

from pipeline import cli, open_run
from pipeline import config as cfgmod
from pipeline.analysis import analyze, cka_runs, cka_tasks
from pipeline.analysis.cka import linear_cka
from pipeline.analysis.cka_sketch import cka_sd_bound, frobenius_sd_bound
from pipeline.analysis.report import AnalysisReport
from pipeline.errors import ConfigError, DamagedDataError
from pipeline.store import analysis_files as files

# ExactCka sums each block's products in float32: ~1e-7 in CKA from float64 (test_cka.py's
# TOLERANCE); ranges cut differently or merged add only float64 rounding on top.
TOLERANCE = 1e-6


def _layers(n: int, widths=(40, 30, 20), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    out = {}
    for i, w in enumerate(widths):
        mixed = np.tanh(latent @ rng.standard_normal((5, w)))
        out[f"l{i}"] = (mixed + 0.3 * rng.standard_normal((n, w)) + 2.0).astype(np.float32)
    return out


def _finite_reference(data: dict[str, np.ndarray]) -> np.ndarray:
    views = [v.reshape(v.shape[0], -1) for v in data.values()]
    ok = np.all([np.isfinite(v).all(axis=1) for v in views], axis=0)
    return np.array([[linear_cka(a[ok], b[ok]) for b in views] for a in views])


@pytest.fixture
def feature_space(monkeypatch):
    monkeypatch.setattr(cka_runs, "GRAM_PATTERNS", 0)  # decided here, followed by the workers


def test_cka_in_the_pool_matches_one_process_and_numpy(tmp_path, feature_space) -> None:
    data = _layers(1000)
    data["l1"][[5, 700]] = np.nan  # left out of CKA, counted
    run_dir = write_run(tmp_path / "run", data, 100)
    one = analyze(run_dir, workers=1, quiet=True, pictures=False)
    alone = dict(np.load(run_dir / "analysis" / "cka.npz"))
    shutil.rmtree(run_dir / "analysis")
    pooled = analyze(run_dir, workers=2, quiet=True, pictures=False)
    both = dict(np.load(run_dir / "analysis" / "cka.npz"))
    assert sorted(one.computed) == sorted(pooled.computed) and "cka.npz" in pooled.computed
    for out in (alone, both):
        assert (str(out["method"]), int(out["patterns"]), int(out["excluded"])) == (
            "exact",
            998,
            2,
        )
        np.testing.assert_allclose(out["matrix"], _finite_reference(data), atol=TOLERANCE)
    np.testing.assert_allclose(both["matrix"], alone["matrix"], atol=TOLERANCE)
    assert not (run_dir / "analysis" / files.PARTIAL).exists()
    run = open_run(run_dir)
    assert run.cka().method == "exact" and len(run.layers) == 3
    again = analyze(run_dir, workers=2, quiet=True, pictures=False)
    assert again.computed == [] and "cka.npz" in again.reused


def test_an_interrupted_analysis_resumes_the_cka_ranges_it_kept(tmp_path, feature_space) -> None:
    data = _layers(800)
    run_dir = write_run(tmp_path / "run", data, 100)
    run = open_run(run_dir)
    report = AnalysisReport(files.folder(run_dir))
    report.prefix[None] = 800
    (job,) = cka_tasks.plan(run, [None], report, {}, None, "auto", str(run_dir))
    job = cka_tasks.with_ranges(job, 2)  # as analyze(workers=2) cuts it
    assert job.ranges == ((0, 400), (400, 800))
    kept = cka_tasks.cka_range(str(run_dir), job, 0)  # what a killed analysis left
    state = dict(np.load(kept))
    state["excluded"] = np.array(7)  # a mark: only a resumed range can bring it in
    np.savez(kept, **state)
    analyze(run_dir, workers=2, quiet=True, pictures=False)
    out = np.load(run_dir / "analysis" / "cka.npz")
    assert int(out["excluded"]) == 7 and int(out["patterns"]) == 800
    np.testing.assert_allclose(out["matrix"], _finite_reference(data), atol=TOLERANCE)
    assert not (run_dir / "analysis" / files.PARTIAL).exists()


def test_the_sketch_from_the_command_line(tmp_path, feature_space) -> None:
    data = _layers(1200, widths=(700, 300, 40), seed=2)
    run_dir = write_run(tmp_path / "run", data, 200)
    argv = ["-q", "analyze", str(run_dir), "--no-pictures", "--workers", "2"]
    assert cli.main([*argv, "--cka", "sketch"]) == 0
    cka = open_run(run_dir).cka()
    assert (cka.method, cka.patterns, cka.batch_size) == ("sketch", 1200, 0)
    stored = np.load(run_dir / "analysis" / "cka.npz")
    assert (int(stored["sketch_size"]), int(stored["seed"])) == (256, 0)
    exact = _finite_reference(data)
    # one draw (seed 0): within 4.5 of the stated relative sd, plus the second-order bias
    sigma = frobenius_sd_bound(256)
    allowed = (4.5 * cka_sd_bound(256) + 2 * sigma**2) * exact
    assert (np.abs(cka.matrix - exact) <= allowed).all()
    assert cli.main(argv) == 0  # auto: exact here, a different key: computed again
    assert open_run(run_dir).cka().method == "exact"
    with pytest.raises(ConfigError, match="cka_method: expected 'auto', 'exact' or 'sketch'"):
        cfgmod.override(cfgmod.Config(), "analyze", cka_method="fast")
    with pytest.raises(ConfigError, match="cka: expected one of"):
        analyze(run_dir, quiet=True, cka_method="fast")


def test_against_another_run_in_the_pool(tmp_path, feature_space) -> None:
    a = _layers(600, widths=(12, 9))
    b = {"other": a["l0"] @ np.random.default_rng(3).standard_normal((12, 6))}
    run_a = write_run(tmp_path / "a", a, 100)
    run_b = write_run(tmp_path / "b", b, 150)
    analyze(run_a, against=run_b, workers=2, quiet=True, pictures=False)
    cross = np.load(run_a / "analysis" / "cka-against.npz")
    assert cross["matrix"].shape == (2, 1) and cross["other_names"].tolist() == ["other"]
    for i, name in enumerate(["l0", "l1"]):
        want = linear_cka(a[name], b["other"].astype(np.float32))
        assert cross["matrix"][i, 0] == pytest.approx(want, abs=TOLERANCE)


def test_a_damaged_file_stops_cka_after_the_statistics(tmp_path, feature_space) -> None:
    run_dir = write_run(tmp_path / "run", _layers(600), 100)
    entry = next(e for e in open_run(run_dir).entries if e.first == 300)
    path = run_dir / entry.path
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedDataError, match="checksum"):
        analyze(run_dir, workers=2, quiet=True, pictures=False)
    written = {p.name for p in (run_dir / "analysis").glob("*.npz")}
    assert len(written) == 2 and "cka.npz" not in written  # the two sound layers


def test_a_range_that_starts_inside_a_file(tmp_path) -> None:
    """``accumulate`` over patterns 150..449 of files of 100 patterns reads exactly those."""
    data = _layers(600, widths=(8, 6))
    run = open_run(write_run(tmp_path / "run", data, 100))
    views = [(run, name, None) for name in run.layers]
    acc, excluded = cka_runs.accumulate(views, 150, 450, "exact", [8, 6], "", True)
    assert (acc.patterns, excluded) == (300, 0)
    want = linear_cka(data["l0"][150:450], data["l1"][150:450])
    assert acc.result()[0, 1] == pytest.approx(want, abs=TOLERANCE)
