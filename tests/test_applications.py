"""Models nobody here wrote: Keras Applications MobileNetV2, ResNet50, EfficientNetB0 and
DenseNet121 (``weights=None``, seeded, 32x32 inputs: the smallest they accept), captured with
``--select all``. Every layer's stored output equals what Keras itself computes in inference
mode (BatchNormalization on its moving statistics, Dropout off), and render draws a cell for
every layer. MobileNetV2 goes through the real CLI in a child process, the others through the
Python API. The default selection rule is not tested here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from externals import have_graphviz, need_keras

need_keras()

from helpers_apps import (  # noqa: E402
    batchnorm_inference,
    batchnorm_training,
    build,
    captured_layers,
    differences,
    inference_mode_layers,
    keras_outputs,
    pages_per_pattern,
    patterns,
    stored,
)
from helpers_diagram import assert_model_png  # noqa: E402
from helpers_reliability import run_passage  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline import open_run  # noqa: E402
from pipeline.cli import main  # noqa: E402

TESTS = Path(__file__).resolve().parent
TOLERANCE = 1e-5  # float32, relative to max(1, the layer's largest |value|)

FACTORY = f"""import sys

sys.path.insert(0, {str(TESTS)!r})
from helpers_apps import build


def mobilenetv2():
    return build("MobileNetV2")
"""


class Case:
    """One application model, its patterns, its capture and what Keras computes."""

    def __init__(self, name: str, model, x: np.ndarray, run_dir: Path) -> None:
        self.name, self.model, self.x, self.run_dir = name, model, x, run_dir
        self.run = open_run(run_dir)
        self.expected = keras_outputs(model, x)


@pytest.fixture(scope="module")
def cli_case(tmp_path_factory):
    """MobileNetV2 captured by ``python -m pipeline capture --model factory.py:mobilenetv2``."""
    tmp = tmp_path_factory.mktemp("mobilenetv2")
    (tmp / "factory.py").write_text(FACTORY, encoding="utf-8")
    x = patterns(3, seed=1)
    np.save(tmp / "x.npy", x)
    run_dir = tmp / "run"
    done = run_passage(
        "-q",
        "capture",
        "--model",
        f"{tmp / 'factory.py'}:mobilenetv2",
        "--patterns",
        str(tmp / "x.npy"),
        "--select",
        "all",
        "--batch-size",
        "2",  # two forward passes, the second one short
        "--out",
        str(run_dir),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return Case("MobileNetV2", build("MobileNetV2"), x, run_dir)


@pytest.fixture(
    scope="module",
    # DenseNet121 (428 layers): 22 s to build, capture and compute Keras' outputs
    params=["ResNet50", "EfficientNetB0", pytest.param("DenseNet121", marks=pytest.mark.slow)],
)
def api_case(request, tmp_path_factory):
    """One model captured in this process by ``capture_model`` (the Python API)."""
    from pipeline.capturing.stream import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig

    model = build(request.param)
    x = patterns(2, seed=2)
    run_dir = tmp_path_factory.mktemp(request.param.lower()) / "run"
    config = Config(
        capture=CaptureConfig(out=str(run_dir), architecture=False),
        select=SelectConfig(rule="all"),
    )
    capture_model(model, config, patterns=[x], quiet=True)
    return Case(request.param, model, x, run_dir)


def _assert_every_layer_equals_keras(case: Case) -> None:
    assert case.run.layers == [la.name for la in captured_layers(case.model)]
    assert case.run.num_patterns == len(case.x)
    diffs = differences(case.run, case.expected)
    worst = sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    assert worst[0][1] <= TOLERANCE, f"{case.name}: largest relative differences {worst}"
    # The model's own call, no sub-model: the last layer is the prediction.
    prediction = np.asarray(case.model(case.x, training=False))
    last = captured_layers(case.model)[-1].name
    np.testing.assert_allclose(stored(case.run, last), prediction, rtol=1e-5, atol=1e-6)


def _assert_inference_mode(case: Case) -> None:
    """Each BatchNormalization's stored output is its stored input normalized with the moving
    statistics (and clearly not with the batch's: the check tells the modes apart); each
    Dropout passes its stored input through unchanged."""
    norms = inference_mode_layers(case.model, ["BatchNormalization"])
    assert norms, f"{case.name} has no BatchNormalization fed by a single layer"
    for layer, feed in norms:
        x, y = stored(case.run, feed), stored(case.run, layer.name)
        scale = max(1.0, float(np.abs(y).max()))
        np.testing.assert_allclose(y, batchnorm_inference(layer, x), rtol=1e-4, atol=1e-5 * scale)
    layer, feed = norms[0]
    x, y = stored(case.run, feed), stored(case.run, layer.name)
    assert np.abs(y - batchnorm_training(layer, x)).max() > 0.1
    for layer, feed in inference_mode_layers(case.model, ["Dropout"]):
        np.testing.assert_array_equal(stored(case.run, layer.name), stored(case.run, feed))


def _assert_render_draws_every_layer(code: int, out: Path, n_layers: int) -> None:
    assert code == 0
    pages = sorted((out / "pattern-0").glob("*.png"))
    assert len(pages) == pages_per_pattern(n_layers)
    assert not (out / "pattern-1").exists()  # --patterns 0
    for page in pages:
        with Image.open(page) as img:
            assert img.format == "PNG" and min(img.size) >= 500


# -- MobileNetV2 through the CLI ------------------------------------------------------------------
def test_mobilenetv2_cli_same_weights_as_here(cli_case):
    from pipeline.capturing.identity import weights_digest

    assert cli_case.run.info["weights_crc32"] == weights_digest(cli_case.model)


def test_mobilenetv2_cli_draws_its_architecture(cli_case, tmp_path):
    """The capture drew ``model.png`` with ``model.txt`` (every layer) beside it. Where Graphviz
    is installed the drawer must be Keras' own ``plot_model`` (pydot is a dependency): the
    picture has the size of plot_model's drawing of the same model, not the matplotlib
    fallback's pages; elsewhere the matplotlib drawing is checked."""
    from pipeline.capturing.diagram import graphviz_available

    if have_graphviz():
        assert graphviz_available(), "dot is installed but Passage would not use it"
    assert_model_png(cli_case.run_dir, cli_case.model, tmp_path)
    if have_graphviz():  # plot_model draws one picture; the fallback continues on model-2.png
        assert not list(cli_case.run_dir.glob("model-*.png"))


def test_mobilenetv2_cli_every_layer_equals_keras(cli_case):
    _assert_every_layer_equals_keras(cli_case)


def test_mobilenetv2_cli_inference_mode(cli_case):
    _assert_inference_mode(cli_case)


@pytest.mark.slow  # 31-64 s on 2 busy cores: 18 matplotlib mosaic pages
def test_mobilenetv2_cli_render_draws_every_layer(cli_case, tmp_path):
    out = tmp_path / "pictures"
    done = run_passage(
        "-q", "render", str(cli_case.run_dir), "--patterns", "0", "--out", str(out), timeout=600
    )
    assert done.stderr == ""
    n = len(cli_case.run.layers)
    _assert_render_draws_every_layer(done.returncode, out, n)


# -- ResNet50, EfficientNetB0, DenseNet121 through the Python API --------------------------------
def test_every_layer_equals_keras(api_case):
    _assert_every_layer_equals_keras(api_case)


def test_batchnorm_and_dropout_in_inference_mode(api_case):
    _assert_inference_mode(api_case)
    if api_case.name == "EfficientNetB0":  # the one with Dropout layers (top and per block)
        assert len(inference_mode_layers(api_case.model, ["Dropout"])) >= 10


@pytest.mark.slow  # 20-45 s on 2 busy cores: 20, 27, 48 matplotlib pages
def test_render_draws_every_layer(api_case, tmp_path):
    out = tmp_path / "pictures"
    # Four channels per mosaic keep the matplotlib pages quick; every layer still gets its cell.
    args = ["-q", "render", str(api_case.run_dir), "--patterns", "0", "--max-channels", "4"]
    code = main([*args, "--out", str(out)])
    _assert_render_draws_every_layer(code, out, len(api_case.run.layers))


STEMS = {  # each model's first convolution and its normalization: 16x16 maps at 32x32 inputs
    "MobileNetV2": ("Conv1", "bn_Conv1"),
    "ResNet50": ("conv1_conv", "conv1_bn"),
    "EfficientNetB0": ("stem_conv", "stem_bn"),
    "DenseNet121": ("conv1_conv", "conv1_bn"),
}


def _assert_default_rule_selects_feature_maps(name: str, model) -> None:
    """The default rule (``maps``) picks the feature maps larger than 15x15 and nothing else:
    on these models the seed rule (2-D outputs only) would refuse everything."""
    from pipeline.capturing.probe import layer_infos
    from pipeline.capturing.selection import select_layers
    from pipeline.config import SelectConfig

    infos = layer_infos(model)
    chosen = {i.name for i in select_layers(infos, SelectConfig())}
    assert set(STEMS[name]) <= chosen
    expected = {
        la.name
        for la in captured_layers(model)
        if len(la.output.shape) == 4 and la.output.shape[1] > 15 and la.output.shape[2] > 15
    }
    assert chosen == expected, f"{name}: {sorted(chosen ^ expected)}"
    assert not any(la.name in chosen for la in model.layers if len(la.output.shape) == 2)


def test_mobilenetv2_default_rule_selects_feature_maps(cli_case):
    _assert_default_rule_selects_feature_maps(cli_case.name, cli_case.model)


def test_default_rule_selects_feature_maps(api_case):
    _assert_default_rule_selects_feature_maps(api_case.name, api_case.model)
