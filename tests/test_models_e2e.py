"""The issue's "done when": `passage capture --model their.keras --patterns their_images/
--select all` on a CNN with a nested backbone (one input: an image folder; two inputs: one
spec per input, or an .npz with one key per input), then `passage render` draws every layer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

keras = need_keras()

from pipeline import open_run  # noqa: E402
from pipeline.cli import main  # noqa: E402

IMAGES = Path(__file__).parent / "data" / "images"
L = keras.layers


def _backbone():
    block = keras.Sequential(
        [keras.Input((13, 13, 4)), L.Conv2D(6, 3, activation="relu", name="conv2")], name="block"
    )
    x_in = keras.Input((28, 28, 1))
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(x_in)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.GlobalAveragePooling2D(name="gap")(block(x))
    return keras.Model(x_in, x, name="backbone")


def _save_two_input_cnn(path: Path) -> keras.Model:
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    meta = keras.Input((3,), name="meta")
    h = L.Concatenate(name="concat")([_backbone()(image), meta])
    out_a = L.Dense(4, activation="softmax", name="class")(h)
    out_b = L.Dense(1, name="score")(h)
    model = keras.Model([image, meta], [out_a, out_b], name="two_input_cnn")
    model.save(path)
    return model


def _pages(run_dir: Path, n_layers: int, n_patterns: int) -> None:
    per = math.ceil(n_layers / 9)
    for p in range(n_patterns):
        pngs = sorted((run_dir / "render" / f"pattern-{p}").glob("*.png"))
        assert len(pngs) == per


def test_two_input_cnn_images_plus_npy_then_render(tmp_path):
    model_path = tmp_path / "their.keras"
    model = _save_two_input_cnn(model_path)
    meta = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    np.save(tmp_path / "meta.npy", meta)
    run_dir = tmp_path / "run"
    patterns = f"{IMAGES},{tmp_path / 'meta.npy'}"
    args = ["-q", "capture", "--model", str(model_path), "--patterns", patterns, "--select", "all"]
    assert main([*args, "--out", str(run_dir), "--batch-size", "3"]) == 0
    run = open_run(run_dir)
    assert run.layers == [
        "backbone/conv1",
        "backbone/pool1",
        "backbone/block/conv2",
        "backbone/block",
        "backbone/gap",
        "backbone",
        "concat",
        "class",
        "score",
    ]
    assert run.sources == [
        f"{n},{tmp_path / 'meta.npy'}[{i}]"
        for i, n in enumerate(["0_circle.png", "1_bar.png", "2_cross.png", "3_gradient.jpg"])
    ]
    from pipeline.capturing.patterns.images import read_image

    image = np.stack(
        [read_image(IMAGES / n, 28, 28, "L") for n in sorted(p.name for p in IMAGES.iterdir())]
    )[..., None]
    backbone = model.get_layer("backbone")
    pool1 = keras.Model(backbone.inputs, backbone.get_layer("pool1").output)([image])
    conv2 = backbone.get_layer("block").get_layer("conv2")(pool1)
    stored = np.stack([run.get("backbone/block/conv2", i) for i in range(4)])
    assert np.allclose(stored, conv2, atol=1e-5)
    heads = model([image, meta])
    assert np.allclose(np.stack([run.get("score", i) for i in range(4)]), heads[1], atol=1e-5)
    assert run.inputs == ["image", "meta"]  # an image folder feeds it: inputs kept by default
    assert np.array_equal(np.stack([run.get_input("image", i) for i in range(4)]), image)
    assert np.array_equal(np.stack([run.get_input("meta", i) for i in range(4)]), meta)

    assert main(["-q", "render", str(run_dir)]) == 0
    _pages(run_dir, len(run.inputs) + len(run.layers), 4)  # the inputs' cells come first


def test_two_input_npz_matched_by_input_name(tmp_path):
    model_path = tmp_path / "their.keras"
    _save_two_input_cnn(model_path)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "p.npz", image=rng.random((2, 28, 28, 1)), meta=rng.random((2, 3)))
    run_dir = tmp_path / "run"
    code = main(
        [
            "-q",
            "capture",
            "--model",
            str(model_path),
            "--patterns",
            str(tmp_path / "p.npz"),
            "--select",
            "all",
            "--class",
            "Conv2D",
            "--out",
            str(run_dir),
            "--no-architecture",
        ]
    )
    assert code == 0
    assert open_run(run_dir).layers == ["backbone/conv1", "backbone/block/conv2"]


def test_one_input_cnn_image_folder_render(tmp_path):
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    out = L.Dense(3, name="out")(_backbone()(image))
    model_path = tmp_path / "cnn.keras"
    keras.Model(image, out).save(model_path)
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "capture",
                "--model",
                str(model_path),
                "--patterns",
                str(IMAGES),
                "--select",
                "all",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    run = open_run(run_dir)
    assert run.source(3) == "3_gradient.jpg"
    assert run.info["sources"]["names"][0] == "0_circle.png"
    assert main(["-q", "render", str(run_dir), "--max-channels", "4"]) == 0
    assert run.inputs == ["image"]
    _pages(run_dir, len(run.inputs) + len(run.layers), 4)


@pytest.mark.parametrize("config", ["configs/cnn.toml", "configs/lstm.toml"])
def test_builtin_configs(tmp_path, config, monkeypatch):
    root = Path(__file__).parent.parent
    monkeypatch.chdir(root)
    run_dir = tmp_path / "run"
    assert (
        main(["-q", "capture", "--config", config, "--out", str(run_dir), "--no-architecture"]) == 0
    )
    run = open_run(run_dir)
    assert run.num_patterns == 4 and len(run.layers) >= 3
    assert main(["-q", "render", str(run_dir), "--config", config, "--patterns", "0"]) == 0


def test_free_size_model_renders_with_stored_shapes(tmp_path):
    from pipeline.capturing.stream import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig
    from pipeline.rendering import render

    x_in = keras.Input((None, None, 1))
    model = keras.Model(x_in, L.Conv2D(3, 3, name="conv")(x_in))
    cfg = Config(
        capture=CaptureConfig(out=str(tmp_path / "run"), architecture=False),
        select=SelectConfig(rule="all"),
    )
    run = capture_model(model, cfg, patterns=np.ones((2, 9, 9, 1), np.float32), quiet=True)
    assert run.layer("conv").shape == (None, None, 3)
    report = render(run, tmp_path / "out", quiet=True)
    assert report.pages == 2 and not report.problems
