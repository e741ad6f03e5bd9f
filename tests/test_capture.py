"""Capture round trips: what the store holds equals what Keras computes, layer by layer."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from pipeline.capturing.patterns import load_patterns
from pipeline.capturing.probe import Probe
from pipeline.capturing.stream import capture_model
from pipeline.config import CaptureConfig, Config, SelectConfig
from pipeline.errors import StoreError

N = 20


def make_config(tmp_path, **capture):
    base = {"out": str(tmp_path / "run"), "patterns": f"random:{N}", "architecture": False}
    base.update(capture)
    return Config(capture=CaptureConfig(**base), select=SelectConfig())


@pytest.mark.parametrize("fmt", ["npy", "json"])
@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_stored_outputs_equal_keras_layers(
    tmp_path, seed_model, keras_layer_output, fmt, batch_size
):
    cfg = make_config(tmp_path, format=fmt, batch_size=batch_size)
    run = capture_model(seed_model, cfg, quiet=True)
    x = load_patterns(f"random:{N}", [(50, 50)]).batch(0, N)[0]
    assert run.layers == ["dense", "my_dense", "dense_2"]
    assert run.num_patterns == N and run.epochs == [None]
    for name in run.layers:
        expected = keras_layer_output(seed_model, name, x)
        chunks = list(run.iter_chunks(name))
        assert [first for first, _ in chunks] == list(range(0, N, batch_size))
        stored = np.concatenate([arr for _, arr in chunks])
        assert stored.dtype == np.float32
        np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.get(name, N - 1), expected[N - 1], rtol=1e-5, atol=1e-6)
    suffix = {"npy": ".npy", "json": ".json"}[fmt]
    assert all(e.path.endswith(suffix) for e in run.entries)


def test_random_patterns_are_deterministic_and_batch_independent():
    a = load_patterns("random:10", [(50, 50)])
    b = load_patterns("random:4", [(50, 50)])
    full = a.batch(0, 10)[0]
    np.testing.assert_array_equal(b.batch(0, 4)[0], full[:4])
    np.testing.assert_array_equal(a.batch(7, 3)[0], full[7:])
    assert full.min() >= 0.0 and full.max() < 1.0
    other_seed = load_patterns("random:10:1", [(50, 50)]).batch(0, 10)[0]
    assert not np.array_equal(other_seed, full)


def test_run_json_and_manifest_follow_the_contract(tmp_path, seed_model):
    run = capture_model(seed_model, make_config(tmp_path, batch_size=8), quiet=True)
    info = orjson.loads((run.path / "run.json").read_bytes())
    assert info["schema_version"] == 1 and info["format"] == "npy" and info["dtype"] == "float32"
    assert info["num_patterns"] == N and info["model_name"] == "seed"
    assert [(r["index"], r["name"], r["class"], r["shape"]) for r in info["layers"]] == [
        (1, "dense", "Dense", [50, 75]),
        (2, "my_dense", "Dense", [50, 50]),
        (3, "dense_2", "Dense", [50, 25]),
    ]
    assert {"tensorflow", "keras", "passage", "numpy"} <= set(info["versions"])
    lines = (run.path / "manifest.jsonl").read_bytes().splitlines()
    assert len(lines) == 3 * 3  # 3 layers x ceil(20 / 8) chunks
    entry = orjson.loads(lines[0])
    assert set(entry) == {
        "path", "layer", "epoch", "first", "count", "shape", "dtype", "min", "max",
        "nonfinite", "bytes", "checksum",
    }  # fmt: skip
    assert entry["epoch"] is None and entry["checksum"].startswith("crc32:")
    for e in run.entries:
        arr = np.load(run.path / e.path)
        assert arr.shape == (e.count, *e.shape)
        assert e.min == pytest.approx(float(arr.min())) and e.max == pytest.approx(float(arr.max()))
        assert (run.path / e.path).stat().st_size == e.bytes
    assert not list(run.path.rglob("*.tmp*"))


def test_probe_is_built_once_per_capture(tmp_path, seed_model):
    before = Probe.builds
    capture_model(seed_model, make_config(tmp_path, batch_size=3), quiet=True)
    assert Probe.builds == before + 1


def test_rerun_resumes_without_rewriting(tmp_path, seed_model):
    cfg = make_config(tmp_path, batch_size=8)
    run = capture_model(seed_model, cfg, quiet=True)
    stamps = {e.path: (run.path / e.path).stat().st_mtime_ns for e in run.entries}
    before = Probe.builds
    again = capture_model(seed_model, cfg, quiet=True)
    assert Probe.builds == before  # nothing left to compute: no probe, no forward pass
    assert {e.path: (again.path / e.path).stat().st_mtime_ns for e in again.entries} == stamps


def test_float16_storage(tmp_path, seed_model, keras_layer_output):
    run = capture_model(seed_model, make_config(tmp_path, dtype="float16"), quiet=True)
    x = load_patterns(f"random:{N}", [(50, 50)]).batch(0, N)[0]
    arr = run.get("dense", 3)
    assert arr.dtype == np.float16
    np.testing.assert_allclose(
        arr, keras_layer_output(seed_model, "dense", x)[3], rtol=2e-3, atol=2e-3
    )


def test_npy_and_npz_pattern_files(tmp_path, seed_model, keras_layer_output):
    x = np.random.default_rng(3).random((5, 50, 50))  # float64: cast to float32 on the way
    np.save(tmp_path / "p.npy", x)
    np.savez(tmp_path / "p.npz", a=x[:2], b=x)
    for spec, expect in ((str(tmp_path / "p.npy"), x), (f"{tmp_path / 'p.npz'}:b", x)):
        out = tmp_path / f"run-{abs(hash(spec))}"
        run = capture_model(
            seed_model, make_config(tmp_path, patterns=spec, out=str(out)), quiet=True
        )
        assert run.num_patterns == 5
        want = keras_layer_output(seed_model, "my_dense", expect.astype(np.float32))
        np.testing.assert_allclose(run.get("my_dense", 4), want[4], rtol=1e-5, atol=1e-6)


def test_batch_size_by_memory_is_the_largest_power_of_two_that_fits():
    from pipeline.capturing.selection import LayerInfo
    from pipeline.capturing.stream import DEFAULT_BATCH, MAX_BATCH, choose_batch_size

    def layers(*shapes):
        return [LayerInfo(i, f"l{i}", "Dense", s) for i, s in enumerate(shapes)]

    assert choose_batch_size(layers((10, 10)), "float32", 4000) == 8  # 400 B per pattern
    assert choose_batch_size(layers((10, 10)), "float16", 4000) == 16  # stored as float16
    assert choose_batch_size(layers((10, 10), (5,)), "float32", 4200) == 8  # 420 B: all layers
    assert choose_batch_size(layers((10, 10)), "float32", 4799) == 8
    assert choose_batch_size(layers((10, 10)), "float32", 6400) == 16
    assert choose_batch_size(layers((10, 10)), "float32", 100) == 1  # not even one fits
    assert choose_batch_size(layers((2,)), "float32", 1 << 40) == MAX_BATCH
    assert choose_batch_size(layers((None, 8)), "float32", 1 << 20) == DEFAULT_BATCH


def test_batch_size_zero_is_chosen_by_batch_mb(tmp_path, seed_model, keras_layer_output):
    n = 300
    cfg = make_config(tmp_path, patterns=f"random:{n}", batch_size=0, batch_mb=1)
    run = capture_model(seed_model, cfg, quiet=True)
    info = orjson.loads((run.path / "run.json").read_bytes())
    per_pattern = sum(4 * int(np.prod(rec["shape"])) for rec in info["layers"])
    batch = info["batch_size"]
    assert batch * per_pattern <= 1 << 20 < 2 * batch * per_pattern  # the largest that fits
    assert batch & (batch - 1) == 0 and batch < n  # a power of two; several files per layer
    x = load_patterns(f"random:{n}", [(50, 50)]).batch(0, n)[0]
    for name in run.layers:
        chunks = list(run.iter_chunks(name))
        assert [first for first, _ in chunks] == list(range(0, n, batch))
        stored = np.concatenate([arr for _, arr in chunks])
        expected = keras_layer_output(seed_model, name, x)
        np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)
    # A second capture of the same config resolves the same batch size: it resumes.
    again = capture_model(seed_model, cfg, quiet=True)
    assert [e.path for e in again.entries] == [e.path for e in run.entries]


def test_a_run_begun_with_another_batch_size_resumes_in_its_own_layout(tmp_path, seed_model):
    begun = make_config(tmp_path, batch_size=8)
    run = capture_model(seed_model, begun, quiet=True)
    lost = run.chunks(run.layers[0])[1].path
    kept = {e.path: (run.path / e.path).stat().st_mtime_ns for e in run.entries if e.path != lost}
    victim = run.path / lost
    victim.unlink()  # as an interrupted capture leaves it: one file missing
    # --batch-size left to the budget (it would choose all 20 here): the run's own 8 is kept.
    again = capture_model(seed_model, make_config(tmp_path, batch_size=0), quiet=True)
    assert again.info["batch_size"] == 8 and again.info["fingerprint"] == run.info["fingerprint"]
    assert victim.exists()
    assert sorted(e.path for e in again.entries) == sorted(e.path for e in run.entries)
    assert all((again.path / p).stat().st_mtime_ns == t for p, t in kept.items())
    # An explicit other size is another run: refused as before.
    with pytest.raises(StoreError, match="holds a different run"):
        capture_model(seed_model, make_config(tmp_path, batch_size=4), quiet=True)
