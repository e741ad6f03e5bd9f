"""The benchmarks run end to end at tiny sizes, so they never rot. Asserts completion and the
figure names in the JSON; never a time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import orjson
import pytest

from bench.sizes import TINY
from bench.suite import run_all

EXPECTED = [
    "capture throughput NPY float32, 300 patterns / article's method",
    "capture throughput / bare forward pass (builtin:seed)",
    "capture throughput / bare forward pass, --dtype float16",
    "capture throughput / bare forward pass (CNN, Conv2D layers)",
    "same, --batch-size 512",
    "ceiling: store alone (no model) / bare forward pass (CNN)",
    "capture throughput / store alone (CNN): how near the disk's limit",
    "capture peak RSS, 300 / 30 patterns",
    "capture time JSON / NPY",
    "render grids/s / article's render loop (2x2, 10x10 in, 100 dpi)",
    "render peak RSS, 8 / 4 patterns",
    "render pages/s: MobileNetV2 96x96, 9 layers (3x3, render's default) / the article's pages "
    "(builtin:seed, 2x2 as configs/seed.toml draws them), one process",
    "render pages/s: MobileNetV2 96x96, 9 layers / builtin:seed (both on the 3x3 default grid, "
    "one process)",
    "same, the article's 2x2 grid",
    "render pages/s: MobileNetV2 96x96, 9 layers, raster / matplotlib PagePainter (same cells, 3x3)",
    "render pages/s: MobileNetV2 96x96, 9 layers, raster / the article's render loop (same cells, "
    "3x3)",
    "analyze throughput / checked read-and-sum, 300 patterns (builtin:seed)",
    "same, analyze --workers 1 (statistics in this process)",
    "read-and-sum checked (size + CRC-32) / unchecked (np.load mmap)",
    "analyze with exact CKA / checked read-and-sum",
    "analyze peak RSS, 300 / 30 patterns",
    "same, --no-cka",
    "training time with CaptureCallback / without",
    "viewer: first pattern view drawn after opening the run, 300 patterns",
    "viewer: switch pattern, p95 over 5 switches",
    "capture --dask local:2 (warm cluster) / in-process capture: time",
    "Dask task overhead: ms per batch, one batch per task / a few large tasks",
    "passage capture --dask local:2 / passage capture, whole commands (cold)",
]


@pytest.mark.slow
def test_bench_quick_path_writes_every_figure(tmp_path):
    results = tmp_path / "results.json"
    # TINY leaves the training figure out of `make bench-tiny`; here it is measured too.
    figures, _ = run_all(replace(TINY, training=True), results, tmp_root=tmp_path)
    doc = orjson.loads(results.read_bytes())
    assert [f["name"] for f in doc["figures"]] == EXPECTED
    assert [f.name for f in figures] == EXPECTED
    assert {"cpu", "cores", "versions", "crc32"} <= set(doc["machine"])
    for f in doc["figures"]:
        assert f["ratio"] is not None and f["ratio"] > 0, f
        assert f["status"] != "not available", f
    training = next(  # fit with the callback / without, on configs/training.toml
        f for f in doc["figures"] if f["name"] == "training time with CaptureCallback / without"
    )
    assert training["baseline"] > 0 and training["ours"] > 0
    assert training["ratio"] == pytest.approx(training["ours"] / training["baseline"])
    assert "configs/training.toml" in training["note"] and "CPU time ratio" in training["note"]
    assert not any(p.name.startswith("passage-bench-") for p in tmp_path.iterdir())


def test_interleaved_rotates_the_order_and_takes_medians():
    from bench.measure import interleaved

    calls: list[str] = []

    def timed(name: str, values: list[float]):
        it = iter(values)

        def run() -> float:
            calls.append(name)
            return next(it)

        return run

    med = interleaved(
        {"a": timed("a", [3, 1, 2]), "b": timed("b", [5, 9, 7]), "c": timed("c", [0, 0, 4])}, 3
    )
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert med == {"a": 2, "b": 7, "c": 0}


def test_analysis_timings_read_every_file_and_analyze_from_scratch(tmp_path, seed_model):
    """The analyze baselines sum every value of the run; each timed analysis computes every
    layer again and checks every file again (a file damaged between two timed analyses in
    one process is found, with one worker as with a pool)."""
    from bench.analysis_suite import ReadAndSum, TimedAnalyze
    from bench.common import capture_config
    from pipeline.capturing.stream import capture_model
    from pipeline.errors import DamagedDataError
    from pipeline.store import open_run

    run = capture_model(seed_model, capture_config(tmp_path / "run", 40, 16), quiet=True)
    assert len(run.chunks(run.layers[0])) == 3  # 16 + 16 + 8 patterns
    expected = sum(
        np.asarray(run.get(name, p), np.float64).sum()
        for name in run.layers
        for p in range(run.num_patterns)
    )
    for check in (True, False):
        timed = ReadAndSum(run.path, check=check)
        assert timed() > 0
        assert timed.total == pytest.approx(expected, rel=1e-5)

    analysis = TimedAnalyze(run.path, workers=1, cka=False)
    for _ in range(2):
        assert analysis() > 0
        assert analysis.report is not None
        assert len(analysis.report.computed) == len(run.layers)
        assert analysis.report.reused == [] and analysis.report.problems == []
    stats = open_run(run.path).analysis(run.layers[0])
    assert stats["count"].max() == 40

    entry = run.chunks(run.layers[1])[1]
    path = run.path / entry.path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    analysis()
    assert analysis.report is not None and len(analysis.report.problems) == 1
    assert run.layers[1] in analysis.report.problems[0]
    unchecked = ReadAndSum(run.path, check=False)
    unchecked()  # the bare memory map reads the damaged file without noticing
    with pytest.raises(DamagedDataError, match="checksum"):
        ReadAndSum(run.path, check=True)()
