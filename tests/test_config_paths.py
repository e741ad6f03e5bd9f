"""Relative paths in a config file follow the file's folder; paths given as flags follow the
current directory. Checked on the pure rules, on ``config.load``, and through real ``passage``
subprocesses started in another folder than the config's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import config as cfgmod
from pipeline import open_run
from pipeline.cli import build_parser, capture_config
from pipeline.config_paths import resolve_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("spec", "kind", "resolved"),
    [
        ("runs/cnn", "path", "cfg/runs/cnn"),
        ("../runs/cnn", "path", "runs/cnn"),  # lexical: configs/../runs is runs
        ("/abs/run", "path", "/abs/run"),
        ("", "path", ""),  # [render] out "": RUN/render, not a path
        ("net.keras", "model", "cfg/net.keras"),
        ("models/net.py:build", "model", "cfg/models/net.py:build"),
        ("net.py:build", "model", "cfg/net.py:build"),
        ("mypkg.nets:build", "model", "mypkg.nets:build"),  # importable: not a file
        ("builtin:cnn", "model", "builtin:cnn"),
        ("../tests/data/images", "patterns", "tests/data/images"),
        ("x.npy", "patterns", "cfg/x.npy"),
        ("x.npz:train", "patterns", "cfg/x.npz:train"),
        ("gen.py:batches", "patterns", "cfg/gen.py:batches"),
        ("mypkg.data:batches", "patterns", "mypkg.data:batches"),
        ("random:10:3", "patterns", "random:10:3"),
        ("images/, meta.npy", "patterns", "cfg/images,cfg/meta.npy"),
        ("random:2,/abs/b.npy", "patterns", "random:2,/abs/b.npy"),
        ("d.npz", "dataset", "cfg/d.npz"),
        ("builtin:stripes:10", "dataset", "builtin:stripes:10"),
    ],
)
def test_which_part_of_a_spec_is_a_file(spec: str, kind: str, resolved: str) -> None:
    assert resolve_spec(spec, kind, "cfg") == resolved
    assert resolve_spec(spec, kind, "") == spec  # a config in the current folder: unchanged
    assert resolve_spec(spec, kind, ".") == spec


def test_load_resolves_the_file_keys_and_flags_follow_the_current_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "c.toml").write_text(
        '[capture]\nmodel = "net.py:build"\npatterns = "imgs, random:1"\nout = "../runs/a"\n'
        '[select]\ninclude = ["x/y"]\n'
        '[render]\nout = "pics"\ncmap = "magma/r"\n'
        '[train]\ndataset = "data/d.npz"\nwatch = "w.npy"\n'
    )
    cfg = cfgmod.load(folder / "c.toml")
    assert cfg.capture.model == f"{folder}/net.py:build"
    assert cfg.capture.patterns == f"{folder}/imgs,random:1"
    assert cfg.capture.out == str(tmp_path / "runs" / "a")
    assert cfg.render.out == str(folder / "pics")
    assert cfg.train is not None
    assert (cfg.train.dataset, cfg.train.watch) == (f"{folder}/data/d.npz", f"{folder}/w.npy")
    assert (cfg.select.include, cfg.render.cmap) == (("x/y",), "magma/r")  # not paths
    # Keys the file does not set keep their defaults, which follow the current folder.
    (folder / "d.toml").write_text('[capture]\npatterns = "random:2"\n')
    assert cfgmod.load(folder / "d.toml").capture.out == cfgmod.CaptureConfig().out
    # Flags are taken as given: relative to the current folder.
    args = build_parser().parse_args(
        ["capture", "--config", str(folder / "c.toml"), "--out", "here", "--patterns", "p.npy"]
    )
    cfg = capture_config(args)
    assert (cfg.capture.out, cfg.capture.patterns) == ("here", "p.npy")
    assert cfg.capture.model == f"{folder}/net.py:build"


def test_a_wrongly_typed_path_key_is_still_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.toml").write_text("[capture]\nout = 3\n")
    with pytest.raises(cfgmod.ConfigError, match=r"\[capture\] out: expected a string"):
        cfgmod.load(tmp_path / "sub" / "c.toml")


FACTORY = """
import keras


def build():
    keras.utils.set_random_seed(7)
    x = keras.Input((6,), name="x")
    h = keras.layers.Dense(5, activation="tanh", name="hidden")(x)
    return keras.Model(x, keras.layers.Dense(3, name="head")(h), name="net")
"""


def stored(run, layer: str) -> np.ndarray:
    """Every pattern's output of ``layer``, read back through the public reader."""
    return np.concatenate([chunk for _, chunk in run.iter_chunks(layer)])


def passage(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_config_elsewhere_finds_its_files_from_any_folder(
    tmp_path: Path, keras, keras_layer_output
) -> None:
    """A config in cfg/ names its factory, patterns, run and render folder relative to cfg/;
    `passage` started in another folder (given the config by a relative path) finds them."""
    folder, elsewhere = tmp_path / "cfg", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "net.py").write_text(FACTORY)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    np.save(folder / "pats.npy", x)
    (folder / "c.toml").write_text(
        '[capture]\nmodel = "net.py:build"\npatterns = "pats.npy"\nout = "runs/r"\n'
        'architecture = false\n[select]\nrule = "all"\n[render]\nout = "pics"\n'
    )
    config = os.path.join("..", "cfg", "c.toml")
    done = passage("capture", "--config", config, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    run = open_run(folder / "runs" / "r")
    assert run.info["model"] == os.path.join("..", "cfg", "net.py") + ":build"
    spec = {"__name__": "net_factory"}
    exec(FACTORY, spec)  # the same seeded factory, built here
    model = spec["build"]()
    for name in ("hidden", "head"):
        np.testing.assert_allclose(
            stored(run, name), keras_layer_output(model, name, x), rtol=1e-6, atol=1e-6
        )
    done = passage("render", "--config", config, "--patterns", "0", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (folder / "pics" / "pattern-0" / "0.png").is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing written where we stood
    # A flag's relative path follows the folder the command runs in.
    done = passage("capture", "--config", config, "--out", "mine", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(stored(open_run(elsewhere / "mine"), "head"), stored(run, "head"))


def test_the_shipped_cnn_config_runs_from_another_folder(tmp_path: Path, keras) -> None:
    """configs/cnn.toml names the image folder as ../tests/data/images: found from tmp_path."""
    from pipeline.capturing.builtin_models import cnn_model
    from pipeline.capturing.patterns import load_patterns

    config = str(ROOT / "configs" / "cnn.toml")
    args = ("--out", "out", "--limit", "2", "--no-architecture", "--include", "dense")
    done = passage("capture", "--config", config, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = open_run(tmp_path / "out")
    images = ROOT / "tests" / "data" / "images"
    assert run.info["patterns"] == str(images)
    assert run.num_patterns == 2 and run.info["sources"]["names"] == ["0_circle.png", "1_bar.png"]
    model = cnn_model()
    x = load_patterns(str(images), [(28, 28, 1)], limit=2).batch(0, 2)[0]
    want = keras.Model(model.inputs, model.get_layer("dense").output)([x], training=False)
    np.testing.assert_allclose(stored(run, "dense"), np.asarray(want), rtol=1e-5, atol=1e-6)
    done = passage("render", "out", "--config", config, "--patterns", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "render" / "pattern-0" / "0.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
