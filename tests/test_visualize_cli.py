"""``passage visualize`` on the command line: the ``[visualize]`` table and its flags, one
stderr line and exit 2 for every refusal, and a visualize killed by SIGKILL in the middle
that a rerun finishes into files byte-identical to an uninterrupted run's."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

need_keras()

from helpers_reliability import ROOT, start_passage, wait_for  # noqa: E402

from pipeline import config as cfgmod  # noqa: E402
from pipeline import open_run  # noqa: E402
from pipeline.analysis import analyze  # noqa: E402
from pipeline.capturing.stream import capture, capture_model  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.store import MANIFEST, read_manifest  # noqa: E402
from pipeline.store.verify import check_run  # noqa: E402

ARGS = ["--layers", "my_dense", "--channels", "0-11", "--batch", "2", "--top", "2",
        "--samples", "4", "--no-pictures", "-q"]  # fmt: skip
BATCHES = 6  # channels 0-11 by 2
KINDS = 6  # image, activation and the four attribution kinds


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seed") / "run"
    cfg = cfgmod.from_dict(
        {
            "capture": {"model": "builtin:seed", "patterns": "random:5:1", "out": str(out)},
            "select": {"rule": "seed"},
        }
    )
    capture(cfg, quiet=True)
    analyze(out, top=3, cka=False, pictures=False, quiet=True)
    return out


def copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def refused(capsys, argv: list[str]) -> str:
    """Run ``passage ARGV`` expecting exit 2 and exactly one stderr line; that line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("passage: error: ")
    return err[0]


def feature_lines(run: Path) -> int:
    return sum(e.path.startswith("features/") for e in read_manifest(run / MANIFEST).entries)


def test_resume_after_sigkill_gives_the_files_of_an_uninterrupted_run(seed_run, tmp_path):
    whole, killed = copy(seed_run, tmp_path / "whole"), copy(seed_run, tmp_path / "killed")
    steps = ["--steps", "300"]
    assert main(["visualize", str(whole), *ARGS, *steps]) == 0
    assert feature_lines(whole) == BATCHES * KINDS
    proc = start_passage("visualize", str(killed), *ARGS, *steps)
    try:
        ended_first = not wait_for(lambda: feature_lines(killed) >= 1, proc, timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not ended_first and proc.returncode == -signal.SIGKILL
    at_kill = feature_lines(killed)
    assert 1 <= at_kill < BATCHES * KINDS, at_kill
    assert main(["visualize", str(killed), *ARGS, *steps]) == 0
    run = open_run(killed)
    assert check_run(run).ok
    files = sorted(p.relative_to(whole).as_posix() for p in (whole / "features").rglob("*.npy"))
    assert len(files) == BATCHES * KINDS
    again = sorted(p.relative_to(killed).as_posix() for p in (killed / "features").rglob("*.npy"))
    assert again == files
    for rel in files:
        assert (whole / rel).read_bytes() == (killed / rel).read_bytes(), rel
    index = [json.loads((r / "features" / "index.json").read_text()) for r in (whole, killed)]
    assert index[0] == index[1]
    entries = [
        {(e.path, e.checksum) for e in read_manifest(r / MANIFEST).entries} for r in (whole, killed)
    ]
    assert entries[0] == entries[1]


def test_config_table_flags_and_refusals(seed_run, tmp_path, capsys):
    run = copy(seed_run, tmp_path / "run")
    toml = tmp_path / "v.toml"
    toml.write_text(
        f'[capture]\nout = "{run.name}"\n\n[visualize]\nlayers = ["my_dense", "dense_2"]\n'
        'channels = "0-1"\nsteps = 4\ntop = 0\npictures = false\n',
        encoding="utf-8",
    )
    assert main(["-q", "visualize", "--config", str(toml)]) == 0
    got = open_run(run).features_of("my_dense")
    assert got["steps"] == 4 and got["channels"].tolist() == [0, 1] and got["top"] == 0
    assert not list((run / "features").glob("*.png"))
    # a flag over the table: other settings, refused naming them and --overwrite
    line = refused(capsys, ["-q", "visualize", "--config", str(toml), "--steps", "5"])
    assert "steps 4 -> 5" in line and "--overwrite" in line
    assert main(["-q", "visualize", "--config", str(toml), "--steps", "5", "--overwrite"]) == 0
    after = open_run(run)
    assert check_run(after).ok  # both layers dropped and written again, nothing orphaned
    assert [after.features_of(layer)["steps"] for layer in ("my_dense", "dense_2")] == [5, 5]
    assert len(after.feature_entries) == 2 * 2  # image + activation per layer, once
    # bad channels, bad sizes, unknown layers, batch-run epochs: one line each
    assert "channels" in refused(capsys, ["visualize", str(run), "--channels", "x"])
    line = refused(capsys, ["visualize", str(run), "--layers", "my_dense", "--channels", "0-99"])
    assert line.startswith("passage: error: --channels: the layer has 50 channel(s)")
    assert "--size" in refused(capsys, ["visualize", str(run), "--size", "12"])
    assert "matches none" in refused(capsys, ["visualize", str(run), "--layers", "conv*"])
    assert "batch run" in refused(capsys, ["visualize", str(run), "--epochs", "3"])
    assert "top" in refused(capsys, ["visualize", str(run), "--top", "-1"])


def test_weights_changed_since_the_capture_are_refused(tmp_path, capsys, keras):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv")]
    )
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32))
    run = tmp_path / "run"
    assert main(["-q", "capture", "--model", str(path), "--patterns", str(tmp_path / "x.npy"),
                 "--out", str(run), "--select", "all", "--no-architecture"]) == 0  # fmt: skip
    assert main(["-q", "visualize", str(run), "--steps", "4", "--no-pictures"]) == 0
    assert open_run(run).features_of("conv")["channels"].tolist() == [0, 1, 2, 3]
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] += 0.5  # one weight changed, the file saved again
    model.set_weights(weights)
    model.save(path)
    line = refused(capsys, ["visualize", str(run), "--steps", "4", "--overwrite"])
    assert "differ from those run" in line and "weights_crc32" in line
    assert open_run(run).features_of("conv")["steps"] == 4  # nothing dropped


def test_in_memory_and_multi_input_runs_are_refused(tmp_path, capsys, keras):
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    run = tmp_path / "mem"
    cfg = cfgmod.from_dict({"capture": {"out": str(run)}, "select": {"rule": "all"}})
    capture_model(model, cfg, np.zeros((2, 4, 4, 1), np.float32), quiet=True)
    assert "model=the_model" in refused(capsys, ["visualize", str(run)])
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    two = keras.Model([a, b], keras.layers.Add(name="add")([a, b]))
    run2 = tmp_path / "two"
    cfg = cfgmod.from_dict({"capture": {"out": str(run2)}, "select": {"rule": "all"}})
    capture_model(two, cfg, [np.zeros((2, 3)), np.ones((2, 3))], quiet=True)
    assert "multi-input models are not supported" in refused(capsys, ["visualize", str(run2)])


def test_make_visualize_target():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "visualize", "CONFIG=configs/cnn.toml"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # the commands it would run, in order (under `make test` make also says where it is)
    commands = [line for line in out.splitlines() if "passage " in line]
    assert any("passage analyze --config configs/cnn.toml" in c for c in commands[:-1])
    assert commands[-1].endswith("passage visualize --config configs/cnn.toml")
