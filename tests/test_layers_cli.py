"""``passage layers`` and the default ``maps`` rule on real CNNs (builtin:cnn, MobileNetV2),
and ``plot_pattern_process`` choosing layers as the CLI does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline import open_run, plot_pattern_process
from pipeline.capturing.selection import MESSAGE_LIMIT
from pipeline.cli import main
from pipeline.config import SelectConfig
from pipeline.errors import ConfigError, SelectionError


@pytest.fixture(scope="module")
def cnn(keras):
    from pipeline.capturing.builtin_models import cnn_model

    return cnn_model()


def keras_layer(model, path: str):
    """The layer a path name (``outer/inner``) stands for, found by Keras' own get_layer."""
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def table(capsys) -> tuple[dict[str, dict[str, str]], str]:
    """Rows of ``passage layers`` output by layer name (cells by header), and the summary."""
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    header = lines[0].split()
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    rows = {}
    for line in lines[2:-1]:
        cells = line.split("  ")
        cells = [c.strip() for c in cells if c.strip()]
        assert len(cells) == len(header), line
        row = dict(zip(header, cells, strict=True))
        rows[row["layer"]] = row
    return rows, lines[-1]


def test_layers_lists_every_layer_of_builtin_cnn(cnn, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "layers", "builtin:cnn", "--min-size", "10x10"]) == 0
    rows, summary = table(capsys)
    assert list(tmp_path.iterdir()) == []  # no run folder, nothing written
    expected_names = ["image", "backbone/image", "backbone/conv1", "backbone/pool1"]
    expected_names += ["backbone/block/conv2", "backbone/block/pool2", "backbone/block"]
    expected_names += ["backbone", "flatten", "dense", "output"]
    assert list(rows) == expected_names
    for name, row in rows.items():  # shape, class and parameters are Keras' own
        layer = keras_layer(cnn, name)
        shape = tuple(layer.output.shape[1:])
        assert row["output"] == str(shape), name
        assert row["class"] == type(layer).__name__
        assert row["params"] == f"{layer.count_params():,}"
        assert row["all"] == ("-" if row["class"] == "InputLayer" else "x")
        assert row["seed"] == "-"  # no (H, W) output in this CNN
        big = len(shape) == 3 and shape[0] > 10 and shape[1] > 10 and row["all"] == "x"
        assert row["maps"] == row["selected"] == ("x" if big else "-"), name
    picked = [n for n, row in rows.items() if row["selected"] == "x"]
    assert picked == ["backbone/conv1", "backbone/pool1", "backbone/block/conv2"]
    assert summary.startswith("3 of 11 layers selected by the maps rule")


def test_layers_takes_captures_selection_flags_and_config(tmp_path, capsys):
    assert main(["layers", "builtin:cnn", "--select", "all", "--include", "backbone/block*"]) == 0
    rows, summary = table(capsys)
    assert [n for n, r in rows.items() if r["selected"] == "x"] == [
        "backbone/block/conv2",
        "backbone/block/pool2",
        "backbone/block",
    ]
    assert rows["backbone/conv1"]["maps"] == "x"  # the rule columns ignore the globs
    assert summary.startswith("3 of 11 layers selected by the all layers, include=")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[capture]\nmodel = "builtin:cnn"\n[select]\nrule = "all"\nclasses = ["Conv2D"]\n'
    )
    assert main(["layers", "--config", str(cfg)]) == 0
    rows, _ = table(capsys)
    assert [n for n, r in rows.items() if r["selected"] == "x"] == [
        "backbone/conv1",
        "backbone/block/conv2",
    ]
    assert main(["layers", "--config", str(cfg), "--select", "maps"]) == 0  # flags win
    rows, _ = table(capsys)
    assert [n for n, r in rows.items() if r["selected"] == "x"] == ["backbone/conv1"]
    assert main(["layers"]) == 0  # no model, no config: the article's model
    rows, summary = table(capsys)
    assert [n for n, r in rows.items() if r["selected"] == "x"] == ["dense", "my_dense", "dense_2"]


def test_layers_with_nothing_selected_says_what_would(capsys):
    assert main(["layers", "builtin:cnn", "--select", "seed"]) == 0
    _, summary = table(capsys)
    assert summary.startswith("0 of 11 layers selected by the seed rule")
    assert "try --select maps, --select all --include GLOB" in summary


def test_layers_bad_spec_is_one_line(tmp_path, capsys):
    assert main(["layers", str(tmp_path / "nope.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model file not found" in err[0]


def test_capture_where_nothing_qualifies_is_a_short_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["-q", "capture", "--model", "builtin:cnn", "--select", "seed", "--out", str(out)]
    assert main([*args, "--patterns", "random:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    line = err[0].removeprefix("passage: error: ")
    assert len(line) <= MESSAGE_LIMIT
    assert "9 layers besides the inputs: 3 of rank 1, 6 of rank 3" in line
    assert "--select maps" in line and "passage layers" in line
    assert "--min-size" not in line  # no (H, W) output: a smaller min size cannot help
    assert not out.exists()


def test_plot_pattern_process_on_a_cnn_chooses_like_the_cli(cnn, tmp_path, keras_layer_output):
    image = np.random.default_rng(0).random((28, 28, 1)).astype("float32")
    folder = plot_pattern_process(cnn, image, tmp_path / "a", plot_model=False)
    run = open_run(folder / "run")
    assert run.layers == ["backbone/conv1"]  # the default maps rule, limit_size_layer 15x15
    assert sorted(p.name for p in (folder / "pattern-0").iterdir()) == ["0.png"]
    backbone = cnn.get_layer("backbone")
    expected = keras_layer_output(backbone, "conv1", image[None])[0]
    np.testing.assert_allclose(run.get("backbone/conv1", 0), expected, rtol=1e-5, atol=1e-6)

    plot_pattern_process(cnn, image, folder, limit_size_layer=(10, 10), plot_model=False)
    assert open_run(folder / "run").layers == [
        "backbone/conv1",
        "backbone/pool1",
        "backbone/block/conv2",
    ]
    only = {"include": "backbone/*", "classes": ["Conv2D", "MaxPooling2D"], "exclude": ("*pool2",)}
    plot_pattern_process(cnn, image, folder, (2, 2), plot_model=False, select="all", **only)
    assert open_run(folder / "run").layers == [
        "backbone/conv1",
        "backbone/pool1",
        "backbone/block/conv2",
    ]
    with pytest.raises(SelectionError, match="--select maps"):
        plot_pattern_process(cnn, image, tmp_path / "b", select="seed", plot_model=False)
    with pytest.raises(ConfigError, match="rule: expected one of"):
        plot_pattern_process(cnn, image, tmp_path / "c", select="nope", plot_model=False)


@pytest.fixture(scope="module")
def mobilenet(keras):
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))


def feature_maps(model, keras, min_size=(15, 15)) -> list[str]:
    """Keras' own view: layers whose output is (batch, H, W, C) with H, W > min_size."""
    names = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        if isinstance(layer, keras.layers.InputLayer) or len(shape) != 4:
            continue
        if shape[1] > min_size[0] and shape[2] > min_size[1]:
            names.append(layer.name)
    return names


def test_maps_rule_selects_mobilenetv2_feature_maps(mobilenet, keras):
    from pipeline.capturing.probe import layer_infos
    from pipeline.capturing.selection import select_layers

    infos = layer_infos(mobilenet)
    for size in ((15, 15), (30, 30), (1, 1)):
        chosen = select_layers(infos, SelectConfig(min_size=size))
        assert [i.name for i in chosen] == feature_maps(mobilenet, keras, size), size
    chosen = select_layers(infos, SelectConfig())
    assert len(chosen) == 30 and chosen[0].name == "Conv1" and chosen[-1].name == "block_3_pad"
    classes = {i.class_name for i in chosen}
    assert {"Conv2D", "BatchNormalization", "ReLU", "DepthwiseConv2D"} <= classes
    assert {"Add", "ZeroPadding2D"} <= classes
    with pytest.raises(SelectionError) as err:  # the strict article rule: nothing, said shortly
        select_layers(infos, SelectConfig(rule="seed"))
    assert len(str(err.value)) <= MESSAGE_LIMIT and "--select maps" in str(err.value)


def test_plot_pattern_process_on_mobilenetv2_writes_pages(
    mobilenet, keras, tmp_path, keras_layer_output
):
    image = np.random.default_rng(1).random((96, 96, 3)).astype("float32")
    folder = plot_pattern_process(mobilenet, image, tmp_path / "mn", plot_model=False)
    run = open_run(folder / "run")
    assert run.layers == feature_maps(mobilenet, keras)
    pages = sorted((folder / "pattern-0").glob("*.png"))
    assert len(pages) == math.ceil(30 / 9)  # 3x3 cells per page
    assert all(p.stat().st_size > 0 for p in pages)
    for name in ("Conv1", "block_2_add", "block_3_pad"):
        expected = keras_layer_output(mobilenet, name, image[None])[0]
        np.testing.assert_allclose(run.get(name, 0), expected, rtol=1e-4, atol=1e-5)
