"""The command line, called as ``main(argv)``: capture, render, and every user error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_diagram import assert_model_png

from pipeline import open_run
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


def capture(tmp_path, *extra, out="run"):
    return main(["-q", "capture", "--out", str(tmp_path / out), "--no-architecture", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("passage: error: ")
    return err[0]


def test_seed_config_end_to_end(tmp_path, capsys, seed_model):
    out = tmp_path / "seed"
    assert (
        main(["-q", "capture", "--config", str(ROOT / "configs/seed.toml"), "--out", str(out)]) == 0
    )
    assert main(["-q", "render", str(out), "--grid", "2x2"]) == 0
    pages = sorted(p.name for p in (out / "render" / "pattern-0").iterdir())
    assert pages == ["0.png"]  # three qualifying layers fit one 2x2 page
    assert_model_png(out / "render", seed_model, tmp_path)  # configs/seed.toml: builtin:seed
    run = open_run(out)
    assert [run.layer(n).shape for n in run.layers] == [(50, 75), (50, 50), (50, 25)]


def test_render_config_gives_the_run_and_grid(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[capture]\nout = "{tmp_path / "r"}"\npatterns = "random:3"\narchitecture = false\n'
        '[render]\ngrid = [1, 1]\npatterns = "1-2"\n'
    )
    assert main(["-q", "capture", "--config", str(cfg)]) == 0
    assert main(["-q", "render", "--config", str(cfg)]) == 0
    render = tmp_path / "r" / "render"
    assert sorted(p.name for p in render.iterdir() if p.is_dir()) == ["pattern-1", "pattern-2"]
    assert sorted(p.name for p in (render / "pattern-1").iterdir()) == ["0.png", "1.png", "2.png"]


def test_flags_override_the_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[capture]\npatterns = "random:2"\nformat = "npy"\n')
    assert capture(tmp_path, "--config", str(cfg), "--format", "json", "--select", "all") == 0
    run = open_run(tmp_path / "run")
    assert run.format == "json" and "output" in run.layers


def test_render_with_many_patterns_uses_a_pool(tmp_path):
    assert capture(tmp_path, "--patterns", "random:30", "--batch-size", "8") == 0
    assert (
        main(
            ["-q", "render", str(tmp_path / "run"), "--workers", "2", "--out", str(tmp_path / "o")]
        )
        == 0
    )
    assert len(list((tmp_path / "o").glob("pattern-*/0.png"))) == 30


def test_python_dash_m_runs_the_cli(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "info", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "not a Passage run" in done.stderr


# -- every user error: one line on stderr, exit 2, nothing half-written ---------------------------
def test_missing_model_file(tmp_path, capsys):
    assert capture(tmp_path, "--model", str(tmp_path / "nope.keras")) == 2
    assert "model file not found" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_unreadable_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip archive")
    assert capture(tmp_path, "--model", str(bad)) == 2
    assert "cannot load model" in one_error_line(capsys)


@pytest.mark.parametrize(
    "flag,value,text",
    [
        ("--model", "nonsense", "expected a .keras/.h5 file, 'module:function' or 'builtin:NAME'"),
        ("--model", "builtin:nope", "unknown builtin model 'nope'"),
        ("--model", "no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("--patterns", "random:abc", "N and SEED must be integers"),
        ("--patterns", "patterns.txt", "pattern file not found"),
    ],
)
def test_malformed_specs(tmp_path, capsys, flag, value, text):
    assert capture(tmp_path, flag, value) == 2
    assert text in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_pattern_shape_mismatch_names_both_shapes(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.zeros((4, 28, 28), np.float32))
    assert capture(tmp_path, "--patterns", str(tmp_path / "p.npy")) == 2
    line = one_error_line(capsys)
    assert "(28, 28)" in line and "(50, 50)" in line
    assert not (tmp_path / "run").exists()


def test_zero_patterns(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.zeros((0, 50, 50), np.float32))
    assert capture(tmp_path, "--patterns", str(tmp_path / "p.npy")) == 2
    assert "zero patterns" in one_error_line(capsys)
    assert capture(tmp_path, "--patterns", "random:0") == 2
    assert "zero patterns" in one_error_line(capsys)


def test_no_layer_qualifies(tmp_path, capsys):
    assert capture(tmp_path, "--min-size", "60x80") == 2
    line = one_error_line(capsys)
    assert "no layer qualifies under the maps rule" in line and "H > 60 and W > 80" in line
    assert "6 layers besides the inputs: 2 of rank 1, 4 of rank 2" in line
    assert "--min-size 49x74" in line  # the largest output, dense's (50, 75), would qualify
    assert not (tmp_path / "run").exists()  # nothing written


def test_folder_with_a_different_run_is_refused_unless_overwrite(tmp_path, capsys):
    assert capture(tmp_path, "--patterns", "random:2") == 0
    assert capture(tmp_path, "--patterns", "random:3") == 2
    assert "holds a different run" in one_error_line(capsys)
    assert open_run(tmp_path / "run").num_patterns == 2  # untouched
    assert capture(tmp_path, "--patterns", "random:3", "--overwrite") == 0
    assert open_run(tmp_path / "run").num_patterns == 3


def test_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert capture(tmp_path) == 2
    assert "holds no Passage run" in one_error_line(capsys)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "body,text",
    [
        ('[capture]\nmodle = "builtin:seed"\n', "unknown config key [capture] 'modle'"),
        ("[captur]\n", "unknown config section [captur]"),
        ('[capture]\nbatch_size = "big"\n', "[capture] batch_size: expected an integer"),
        ("[select]\nmin_size = [15]\n", "[select] min_size: expected a list of 2 items"),
        ("[capture\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, body, text):
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    assert capture(tmp_path, "--config", str(cfg)) == 2
    assert text in one_error_line(capsys)


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["capture", "--format", "xml"]) == 2
    assert "invalid choice: 'xml'" in one_error_line(capsys)
    assert main(["render", str(tmp_path), "--grid", "3by3"]) == 2
    assert "expected AxB" in one_error_line(capsys)


def test_render_of_a_missing_run(tmp_path, capsys):
    assert main(["render", str(tmp_path / "none")]) == 2
    assert "is not a Passage run" in one_error_line(capsys)


def test_direct_and_buffered_io_write_the_same_run(tmp_path):
    """Files above the direct-I/O threshold (7.7 MB for 'dense' at batch 512) come out byte
    for byte the same with --buffered-io --fsync, and equal what Keras computes."""
    from pipeline.capturing.builtin_models import seed_model
    from pipeline.capturing.patterns import load_patterns
    from pipeline.store.direct_io import DIRECT_MIN

    common = ("--patterns", "random:700:3", "--batch-size", "512")
    assert capture(tmp_path, *common, out="direct") == 0
    assert capture(tmp_path, *common, "--buffered-io", "--fsync", out="buffered") == 0
    direct, buffered = tmp_path / "direct", tmp_path / "buffered"
    files = sorted(p.relative_to(direct) for p in (direct / "data").rglob("*.npy"))
    assert files == sorted(p.relative_to(buffered) for p in (buffered / "data").rglob("*.npy"))
    assert max((direct / f).stat().st_size for f in files) > DIRECT_MIN
    for f in files:
        assert (direct / f).read_bytes() == (buffered / f).read_bytes(), f
    assert (direct / "manifest.jsonl").read_bytes() == (buffered / "manifest.jsonl").read_bytes()
    model = seed_model()
    x = load_patterns("random:700:3", [(50, 50)]).batch(0, 700)[0]
    import keras

    want = keras.Model(model.input, model.get_layer("dense").output)(x)
    got = np.concatenate([a for _, a in open_run(direct).iter_chunks("dense")])
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)


def test_limit_captures_the_first_patterns_of_an_endless_dataset(
    tmp_path, capsys, seed_model, keras_layer_output
):
    gen = tmp_path / "endless.py"
    gen.write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    i = 0\n"
        "    while True:\n"
        "        ramp = np.arange(i, i + 4, dtype=np.float32) / 40  # pattern p: all p / 40\n"
        "        yield np.broadcast_to(ramp[:, None, None], (4, 50, 50)).copy()\n"
        "        i += 4\n"
    )
    assert capture(tmp_path, "--patterns", f"{gen}:batches", "--limit", "10") == 0
    run = open_run(tmp_path / "run")
    assert run.num_patterns == 10
    # The first 10 patterns in order: batches 0 and 1 whole, the first half of batch 2.
    x = np.stack([np.full((50, 50), p / 40, np.float32) for p in range(10)])
    want = keras_layer_output(seed_model, "dense", x)
    got = np.stack([run.get("dense", p) for p in range(10)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert capture(tmp_path, "--limit", "-1", out="bad") == 2
    assert "limit: expected >= 0" in one_error_line(capsys)
