"""Analyze end to end: a real Keras capture, a training run, CKA through the store (layers,
epochs, another run), the pictures, the command line, and a SIGKILLed analysis resumed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import check_result, reference, stored, write_run

from pipeline import cli, open_run
from pipeline.analysis import analyze, cka_runs
from pipeline.analysis.cka import linear_cka
from pipeline.config import CaptureConfig, Config, SelectConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(keras):
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(5, name="dense")(x)
    return keras.Model(inp, out)


def test_a_keras_capture_against_keras_itself(tmp_path, keras, keras_layer_output) -> None:
    from pipeline import capture_model

    model = tiny_model(keras)
    x = np.random.default_rng(0).random((150, 8, 8, 1), dtype=np.float32)
    cfg = Config(
        capture=CaptureConfig(out=str(tmp_path / "run"), batch_size=32, keep_inputs=True),
        select=SelectConfig(rule="all"),
    )
    run = capture_model(model, cfg, x, quiet=True)
    report = analyze(run.path, workers=1, quiet=True)
    run = open_run(run.path)
    outputs = {name: keras_layer_output(model, name, x) for name in run.layers}
    for name, out in outputs.items():
        check_result(run.analysis(name), reference(out), rtol=1e-5)
    cka = run.cka()
    names, matrix = cka.layers, cka.matrix
    assert names == run.layers
    assert (cka.method, cka.epoch, cka.patterns, cka.excluded) == ("exact", None, 150, 0)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            want = linear_cka(outputs[a].reshape(150, -1), outputs[b].reshape(150, -1))
            assert matrix[i, j] == pytest.approx(want, abs=1e-6)
    pictures = {p.name for p in report.pictures}
    for name in run.layers:
        stem = run.layer(name).dir
        assert {f"{stem}.summary.png", f"{stem}.top.png"} <= pictures
    assert "cka.png" in pictures
    for path in report.pictures:
        assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"


def training_run(tmp_path: Path, epochs: int = 4) -> tuple[Path, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    n = 12
    base = rng.standard_normal((n, 6, 3))
    drift = rng.standard_normal((n, 6, 3))
    seq = np.stack([base + e * 0.4 * drift for e in range(epochs)])
    dense = np.stack([np.tanh(seq[e].reshape(n, -1)[:, :5] * (e + 1)) for e in range(epochs)])
    labels = np.arange(n) % 3
    info = {"watch": {"labels": labels.tolist(), "class_names": ["a", "b", "c"]}}
    data = {"seq": seq, "dense": dense}
    root = write_run(tmp_path / "train", data, 5, epochs=list(range(epochs)), info=info)
    return root, labels, data


def test_a_training_run_every_epoch_labels_and_cka_over_epochs(tmp_path) -> None:
    root, labels, data = training_run(tmp_path)
    report = analyze(root, workers=1, quiet=True)
    run = open_run(root)
    for name, arr in data.items():
        for e in range(4):
            check_result(run.analysis(name, e), reference(stored(arr[e], "float32"), labels=labels))
    assert run.analysis("seq")["classes"].tolist() == [0, 1, 2]
    over = np.load(root / "analysis" / "cka-epochs.npz")
    assert over["epochs"].tolist() == [0, 1, 2, 3]
    for i, name in enumerate(run.layers):
        last = stored(data[name][3], "float32").reshape(12, -1)
        for e in range(4):
            want = linear_cka(stored(data[name][e], "float32").reshape(12, -1), last)
            assert over["matrix"][i, e] == pytest.approx(want, abs=1e-6)
    assert over["matrix"][:, -1] == pytest.approx(1.0)
    cka = run.cka(2)
    matrix = cka.matrix
    assert (cka.layers, cka.epoch, cka.method) == (run.layers, 2, "exact")
    assert run.cka().epoch == 3  # no epoch: the last one, said
    assert matrix[0, 1] == pytest.approx(
        linear_cka(data["seq"][2].reshape(12, -1), data["dense"][2]), abs=1e-5
    )
    pictures = {p.name for p in report.pictures}
    assert {"cka-epochs.png", "000-seq.epoch-00003.classes.png"} <= pictures


def test_against_another_run_over_the_same_patterns(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cka_runs, "GRAM_PATTERNS", 0)  # the feature-space accumulator, chunked
    rng = np.random.default_rng(8)
    a = {"one": rng.standard_normal((90, 10)), "two": rng.standard_normal((90, 4, 3))}
    b = {"other": a["one"] @ rng.standard_normal((10, 6)) + 0.1 * rng.standard_normal((90, 6))}
    run_a = write_run(tmp_path / "a", a, 25)
    run_b = write_run(tmp_path / "b", b, 40)
    analyze(run_a, against=run_b, workers=1, quiet=True)
    cross = np.load(run_a / "analysis" / "cka-against.npz")
    assert cross["matrix"].shape == (2, 1) and cross["other_names"].tolist() == ["other"]
    assert str(cross["method"]) == "exact" and int(cross["patterns"]) == 90
    cka = open_run(run_a).cka()
    names, matrix = cka.layers, cka.matrix
    x, y = (stored(a[n], "float32").reshape(90, -1) for n in names)
    assert matrix[0, 1] == pytest.approx(linear_cka(x, y), abs=1e-6)
    for i, name in enumerate(["one", "two"]):
        x = stored(a[name], "float32").reshape(90, -1)
        want = linear_cka(x, stored(b["other"], "float32"))
        assert cross["matrix"][i, 0] == pytest.approx(want, abs=1e-6)
    assert (run_a / "analysis" / "cka-against.png").is_file()
    short = write_run(tmp_path / "c", {"other": b["other"][:50]}, 25)
    assert cli.main(["-q", "analyze", str(run_a), "--against", str(short)]) == 2


def test_wide_layers_use_the_minibatch_estimator(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(9)
    z = rng.standard_normal((600, 30))
    wide = {
        "w1": (z @ rng.standard_normal((30, 4200))).astype(np.float32),
        "w2": (np.tanh(z) @ rng.standard_normal((30, 4100))).astype(np.float32),
    }
    run_dir = write_run(tmp_path / "run", wide, 128)
    exact = linear_cka(wide["w1"], wide["w2"])
    # 600 patterns are few: exact, from the views' Gram matrices
    analyze(run_dir, workers=1, quiet=True, pictures=False)
    data = np.load(run_dir / "analysis" / "cka.npz")
    assert str(data["method"]) == "exact" and data["matrix"][0, 1] == pytest.approx(exact, abs=1e-6)
    # as if they were many: the minibatch estimator over batches of 256
    monkeypatch.setattr(cka_runs, "GRAM_PATTERNS", 0)
    shutil.rmtree(run_dir / "analysis")
    analyze(run_dir, workers=1, quiet=True, pictures=False)
    data = np.load(run_dir / "analysis" / "cka.npz")
    assert str(data["method"]) == "minibatch" and int(data["batch_size"]) == 256
    assert data["matrix"][0, 1] == pytest.approx(exact, abs=0.05)


def test_the_command_line(tmp_path, capsys) -> None:
    data = {"dense": np.random.default_rng(10).standard_normal((40, 6))}
    run_dir = write_run(tmp_path / "run", data, 16)
    assert cli.main(["-q", "analyze", str(run_dir), "--epoch", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected 'all' or an epoch number" in err
    entry = next(e for e in open_run(run_dir).entries if e.first == 16)
    path = run_dir / entry.path
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cli.main(["-q", "analyze", str(run_dir), "--no-cka", "--no-pictures"]) == 1
    err = capsys.readouterr().err
    assert "left out 1 layer(s) with damaged data files" in err and "checksum" in err
    assert not (run_dir / "analysis" / "000-dense.npz").exists()


@pytest.mark.slow
def test_an_analysis_killed_with_sigkill_resumes(tmp_path) -> None:
    rng = np.random.default_rng(11)
    data = {f"l{i}": rng.standard_normal((4000, 40, 50)).astype(np.float32) for i in range(3)}
    run_dir = write_run(tmp_path / "run", data, 250)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PASSAGE_PIECE_BYTES=str(2 << 20))
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "-q",
        "analyze",
        str(run_dir),
        "--workers",
        "1",
        "--no-cka",
        "--no-pictures",
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    partial = run_dir / "analysis" / ".partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(partial.glob("*.npz"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(list(partial.glob("*.npz")))
    assert kept >= 3, "the analysis ended before it could be killed"
    # what a kill can leave besides whole partials, made certain (a kill lands where it lands):
    # a half-written temporary, and the partial of a piece no job of this analysis has
    (partial / f"{'0' * 40}.npz.tmp{proc.pid}").write_bytes(b"PK\x03\x04 cut short")
    (partial / f"{'f' * 40}.npz").write_bytes(b"a piece of an older capture")
    os.environ["PASSAGE_PIECE_BYTES"] = str(2 << 20)
    try:
        report = analyze(run_dir, workers=1, cka=False, pictures=False, quiet=True)
    finally:
        del os.environ["PASSAGE_PIECE_BYTES"]
    run = open_run(run_dir)
    assert report.pieces == 3 * 16 - kept  # the kept pieces were not reduced again
    for name, arr in data.items():
        check_result(run.analysis(name), reference(arr))
    assert not partial.exists()
