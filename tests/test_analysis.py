"""Analyze: every key against numpy on the whole array, across ranks, formats, dtypes, batch
sizes, NaN/Inf, labels, resumes, locks and incomplete runs."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_helpers import check_result, reference, stored, write_run

from pipeline import open_run
from pipeline.analysis import analyze, pieces
from pipeline.errors import ConfigError, NotInRunError, RunLockedError
from pipeline.store.lock import RunLock

N = 203  # batch sizes below do not divide it


def layers(rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    dense = rng.standard_normal((n, 12)) + 0.3
    dense[:, 0] = -np.abs(dense[:, 0])  # a dead unit
    seq = rng.standard_normal((n, 7, 5)) * 3 + 100  # large mean against its spread
    maps = np.maximum(rng.standard_normal((n, 6, 5, 4)), 0)
    maps[..., 2] = 0.0  # a dead channel (relu)
    vol = rng.standard_normal((n, 3, 4, 2, 3))
    return {"dense": dense, "seq": seq, "maps": maps, "vol": vol}


@pytest.mark.parametrize(
    ("fmt", "dtype", "batch"),
    [("npy", "float32", 32), ("json", "float32", 50), ("npy", "float16", 64)],
)
def test_every_key_matches_numpy(tmp_path, fmt, dtype, batch) -> None:
    data = layers(np.random.default_rng(0))
    run_dir = write_run(tmp_path / "run", data, batch, fmt=fmt, dtype=dtype)
    report = analyze(run_dir, cka=False, pictures=False, workers=1, quiet=True)
    run = open_run(run_dir)
    assert sorted(report.computed) == sorted(f"{run.layer(n).dir}.npz" for n in data)
    for name, arr in data.items():
        got = run.analysis(name)
        check_result(got, reference(stored(arr, dtype)), rtol=1e-5 if dtype == "float32" else 1e-4)
        assert "classes" not in got


def test_nan_and_inf_are_left_out_and_counted(tmp_path) -> None:
    rng = np.random.default_rng(1)
    data = layers(rng)
    for arr in data.values():
        flat = arr.reshape(-1)
        flat[rng.integers(0, flat.size, 40)] = np.nan
        flat[rng.integers(0, flat.size, 7)] = np.inf
        flat[rng.integers(0, flat.size, 3)] = -np.inf
    data["dense"][:, 5] = np.nan  # a unit with no finite value at all
    run_dir = write_run(tmp_path / "run", data, 40)
    analyze(run_dir, cka=False, pictures=False, workers=1, quiet=True)
    run = open_run(run_dir)
    for name, arr in data.items():
        got = run.analysis(name)
        want = reference(stored(arr, "float32"))
        assert want["nonfinite"] > 0
        check_result(got, want)
    dense = run.analysis("dense")
    assert dense["count"][5] == 0 and np.isnan(dense["mean"][5]) and not dense["dead"][5]
    assert (dense["top_index"][5] == -1).all() and np.isnan(dense["top_value"][5]).all()


def test_labels_give_class_channel_means(tmp_path) -> None:
    rng = np.random.default_rng(2)
    data = layers(rng)
    labels = rng.integers(0, 4, N)
    labels[labels == 2] = 7  # class values need not be 0..n-1
    np.save(tmp_path / "labels.npy", labels)
    run_dir = write_run(tmp_path / "run", data, 64)
    analyze(
        run_dir,
        labels=tmp_path / "labels.npy",
        cka=False,
        pictures=False,
        workers=1,
        quiet=True,
        top=4,
    )
    run = open_run(run_dir)
    for name, arr in data.items():
        got = run.analysis(name)
        check_result(got, reference(stored(arr, "float32"), k=4, labels=labels))
        assert got["top_index"].shape[1] == 4


def test_top_k_larger_than_the_patterns_pads(tmp_path) -> None:
    data = {"dense": np.random.default_rng(3).standard_normal((5, 3))}
    run_dir = write_run(tmp_path / "run", data, 2)
    analyze(run_dir, top=8, cka=False, pictures=False, workers=1, quiet=True)
    got = open_run(run_dir).analysis("dense")
    check_result(got, reference(stored(data["dense"], "float32"), k=8))
    assert (got["top_index"][:, 5:] == -1).all()


def test_pieces_over_a_process_pool_and_a_resumed_analysis(tmp_path, monkeypatch) -> None:
    data = layers(np.random.default_rng(4))
    run_dir = write_run(tmp_path / "run", data, 16)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 4000)  # several pieces per layer
    first = analyze(run_dir, cka=False, pictures=False, workers=2, quiet=True)
    assert first.pieces > 2 * len(data)
    run = open_run(run_dir)
    for name, arr in data.items():
        check_result(run.analysis(name), reference(stored(arr, "float32")))
    again = analyze(run_dir, cka=False, pictures=False, workers=2, quiet=True)
    assert again.computed == [] and len(again.reused) == len(data) and again.pieces == 0
    assert not any((run_dir / "analysis" / ".partial").glob("*.npz"))


def test_a_changed_top_k_computes_again(tmp_path) -> None:
    data = {"dense": np.random.default_rng(5).standard_normal((30, 4))}
    run_dir = write_run(tmp_path / "run", data, 8)
    analyze(run_dir, cka=False, pictures=False, workers=1, quiet=True)
    again = analyze(run_dir, top=3, cka=False, pictures=False, workers=1, quiet=True)
    assert again.computed and open_run(run_dir).analysis("dense")["top_index"].shape == (4, 3)


def test_a_run_being_captured_is_refused(tmp_path) -> None:
    run_dir = write_run(tmp_path / "run", {"dense": np.zeros((4, 3))}, 2)
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        with pytest.raises(RunLockedError, match="being written"):
            analyze(run_dir, quiet=True)
    finally:
        lock.release()
    assert not (run_dir / "analysis" / "index.json").exists()


def test_an_incomplete_run_is_analyzed_up_to_its_complete_prefix(tmp_path, caplog) -> None:
    data = layers(np.random.default_rng(6))
    run_dir = write_run(tmp_path / "run", data, 32, stop=96)  # 3 of 7 chunks captured
    report = analyze(run_dir, cka=False, pictures=False, workers=1, quiet=True)
    assert report.prefix == {None: 96}
    assert "complete prefix, patterns 0..95 of 203" in caplog.text
    run = open_run(run_dir)
    for name, arr in data.items():
        check_result(run.analysis(name), reference(stored(arr[:96], "float32")))


def test_bad_arguments_are_one_line_errors(tmp_path) -> None:
    run_dir = write_run(tmp_path / "run", {"dense": np.zeros((4, 3))}, 2)
    with pytest.raises(ConfigError, match="not in run"):
        analyze(run_dir, epoch=3, quiet=True)
    np.save(tmp_path / "short.npy", np.arange(2))
    with pytest.raises(ConfigError, match="expected 4 labels"):
        analyze(run_dir, labels=tmp_path / "short.npy", quiet=True)
    np.save(tmp_path / "float.npy", np.linspace(0, 1, 4))
    with pytest.raises(ConfigError, match="one integer per pattern"):
        analyze(run_dir, labels=tmp_path / "float.npy", quiet=True)
    with pytest.raises(NotInRunError, match="passage analyze"):
        open_run(run_dir).analysis("dense")


def test_the_analyze_config_table(tmp_path) -> None:
    from pipeline import cli, config

    data = {"dense": np.random.default_rng(12).standard_normal((20, 3))}
    run_dir = write_run(tmp_path / "run", data, 8)
    np.save(tmp_path / "labels.npy", np.arange(20) % 2)
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text(
        '[capture]\nout = "run"\n[analyze]\ntop = 2\nlabels = "labels.npy"\ncka = false\n'
        "pictures = false\n"
    )
    cfg = config.load(cfg_file)
    assert cfg.analyze.labels == str(tmp_path / "labels.npy") and cfg.analyze.top == 2
    assert cli.main(["-q", "analyze", "--config", str(cfg_file)]) == 0
    got = open_run(run_dir).analysis("dense")
    assert got["top_index"].shape == (3, 2) and got["classes"].tolist() == [0, 1]
    assert not (run_dir / "analysis" / "cka.npz").exists()
    cfg_file.write_text("[analyze]\ntops = 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key \[analyze\] 'tops'"):
        config.load(cfg_file)
    cfg_file.write_text('[analyze]\nepoch = "last"\n')
    with pytest.raises(ConfigError, match="expected 'all' or an epoch number"):
        config.load(cfg_file)


def test_a_layer_whose_shape_changes_between_files_is_left_out(tmp_path, caplog) -> None:
    from pipeline.store import RunWriter
    from pipeline.store.naming import layer_dir

    info = {
        "mode": "batch",
        "model": "test",
        "fingerprint": "free",
        "num_patterns": 8,
        "layers": [
            {
                "index": 0,
                "name": "seq",
                "class": "LSTM",
                "shape": [None, 3],
                "dir": layer_dir(0, "seq"),
            },
            {"index": 1, "name": "out", "class": "Dense", "shape": [3], "dir": layer_dir(1, "out")},
        ],
    }
    rng = np.random.default_rng(13)
    out = rng.standard_normal((8, 3))
    with RunWriter(tmp_path / "run", info) as w:
        for first, steps in ((0, 5), (4, 7)):
            w.write("seq", None, first, rng.standard_normal((4, steps, 3)))
            w.write("out", None, first, out[first : first + 4])
    analyze(tmp_path / "run", workers=1, quiet=True, pictures=False)
    assert "'seq' is left out: its outputs change shape" in caplog.text
    run = open_run(tmp_path / "run")
    check_result(run.analysis("out"), reference(out.astype(np.float32)))
    with pytest.raises(NotInRunError):
        run.analysis("seq")
    assert run.cka().layers == ["out"]


def test_a_second_analysis_in_one_process_checks_the_files_again(tmp_path) -> None:
    data = {"dense": np.random.default_rng(14).standard_normal((40, 6))}
    run_dir = write_run(tmp_path / "run", data, 16)
    first = analyze(run_dir, workers=1, cka=False, pictures=False, quiet=True)
    assert first.problems == []
    entry = next(e for e in open_run(run_dir).entries if e.first == 16)
    raw = bytearray((run_dir / entry.path).read_bytes())
    raw[-1] ^= 0xFF
    (run_dir / entry.path).write_bytes(bytes(raw))
    again = analyze(run_dir, top=4, workers=1, cka=False, pictures=False, quiet=True)
    assert len(again.problems) == 1 and "checksum" in again.problems[0]
