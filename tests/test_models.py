"""Each model kind: what the probe captures equals the layer's own output computed by Keras
through a separate path (the sub-model's own graph, or the layer objects called eagerly)."""

from __future__ import annotations

import numpy as np
import pytest
from externals import need_keras

keras = need_keras()

from pipeline.capturing.builtin_models import builtin_model  # noqa: E402
from pipeline.capturing.graph import rebuild  # noqa: E402
from pipeline.capturing.probe import Probe, layer_infos  # noqa: E402
from pipeline.capturing.selection import select_layers  # noqa: E402
from pipeline.config import CaptureConfig, Config, SelectConfig  # noqa: E402
from pipeline.errors import SelectionError  # noqa: E402

L = keras.layers


def _init(seed: int):
    return keras.initializers.GlorotUniform(seed=seed)


def two_input_model():
    """Nested functional backbone (holding a nested Sequential) on an image input, a vector
    input, two output heads."""
    block = keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            L.Conv2D(3, 3, name="conv.b", kernel_initializer=_init(2)),
            L.ReLU(name="relu"),
        ],
        name="block.1",
    )
    img = keras.Input((8, 8, 1), name="img")
    x = L.Conv2D(4, 3, name="conv_a", kernel_initializer=_init(1))(img)
    x = block(x)
    x = L.Flatten(name="flat")(x)
    backbone = keras.Model(img, x, name="backbone")

    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((5,), name="meta")
    h = L.Concatenate(name="concat")([backbone(image), meta])
    h = L.Dense(6, activation="tanh", name="dense", kernel_initializer=_init(3))(h)
    head_a = L.Dense(2, name="head_a", kernel_initializer=_init(4))(h)
    head_b = L.Dense(3, activation="softmax", name="head_b", kernel_initializer=_init(5))(h)
    return keras.Model([image, meta], [head_a, head_b], name="two")


def _all(model):
    return select_layers(layer_infos(model), SelectConfig(rule="all"))


def _probe_dict(model, batch):
    layers = _all(model)
    outs = Probe(model, layers)(batch)
    return dict(zip([i.name for i in layers], outs, strict=True))


def test_nested_names_and_order():
    names = [i.name for i in _all(two_input_model())]
    assert names == [
        "backbone/conv_a",
        "backbone/block.1/conv.b",
        "backbone/block.1/relu",
        "backbone/block.1",
        "backbone/flat",
        "backbone",
        "concat",
        "dense",
        "head_a",
        "head_b",
    ]


def test_nested_two_input_two_head_outputs_match_keras():
    model = two_input_model()
    rng = np.random.default_rng(0)
    xi = rng.random((4, 8, 8, 1), dtype=np.float32)
    xm = rng.random((4, 5), dtype=np.float32)
    got = _probe_dict(model, [xi, xm])

    backbone = model.get_layer("backbone")
    block = backbone.get_layer("block.1")
    # Separate path 1: the sub-models' own graphs.
    conv_a = keras.Model(backbone.inputs, backbone.get_layer("conv_a").output)([xi])
    conv_b = keras.Model(block.inputs, block.get_layer("conv.b").output)([conv_a])
    # Separate path 2: the layer objects called eagerly, one after the other.
    relu = block.get_layer("relu")(conv_b)
    flat = backbone.get_layer("flat")(relu)
    dense = model.get_layer("dense")(model.get_layer("concat")([flat, xm]))
    head_a, head_b = model([xi, xm])

    expected = {
        "backbone/conv_a": conv_a,
        "backbone/block.1/conv.b": conv_b,
        "backbone/block.1/relu": relu,
        "backbone/block.1": block(conv_a),
        "backbone/flat": flat,
        "backbone": backbone(xi),
        "dense": dense,
        "head_a": head_a,
        "head_b": head_b,
    }
    for name, want in expected.items():
        assert got[name].shape == tuple(want.shape), name
        assert np.allclose(got[name], np.asarray(want), atol=1e-6), name


def test_rebuilt_graph_shares_weights_and_matches_model():
    model = two_input_model()
    inputs, tensors, _ = rebuild(model)
    rebuilt = keras.Model(inputs, [tensors["head_a"], tensors["head_b"]])
    assert len(rebuilt.weights) == len(model.weights)
    assert {id(w) for w in rebuilt.weights} == {id(w) for w in model.weights}
    rng = np.random.default_rng(1)
    batch = [rng.random((3, 8, 8, 1), dtype=np.float32), rng.random((3, 5), dtype=np.float32)]
    for a, b in zip(rebuilt(batch), model(batch), strict=True):
        assert np.allclose(a, b, atol=1e-6)


def test_deep_nesting_three_levels():
    inner = keras.Sequential(
        [keras.Input((4,)), L.Dense(3, name="d3", kernel_initializer=_init(7))], name="l3"
    )
    mid_in = keras.Input((4,))
    mid = keras.Model(
        mid_in, inner(L.Dense(4, name="d2", kernel_initializer=_init(8))(mid_in)), name="l2"
    )
    top_in = keras.Input((4,))
    top = keras.Model(top_in, mid(top_in), name="l1")
    x = np.random.default_rng(2).random((2, 4), dtype=np.float32)
    got = _probe_dict(top, [x])
    d2 = mid.get_layer("d2")(x)
    assert np.allclose(got["l2/d2"], d2, atol=1e-6)
    assert np.allclose(got["l2/l3/d3"], inner.get_layer("d3")(d2), atol=1e-6)
    assert np.allclose(got["l2"], top(x), atol=1e-6)


def test_top_level_sequential_with_nested_sequential():
    inner = keras.Sequential(
        [keras.Input((3,)), L.Dense(2, name="in_dense", kernel_initializer=_init(9))], name="inner"
    )
    model = keras.Sequential(
        [keras.Input((5,)), L.Dense(3, name="first", kernel_initializer=_init(10)), inner],
        name="outer",
    )
    x = np.random.default_rng(3).random((2, 5), dtype=np.float32)
    got = _probe_dict(model, [x])
    assert list(got) == ["first", "inner/in_dense", "inner"]
    assert np.allclose(got["inner/in_dense"], model(x), atol=1e-6)


def test_builtin_cnn_nested_backbone_matches_keras():
    model = builtin_model("cnn")
    x = np.random.default_rng(4).random((3, 28, 28, 1), dtype=np.float32)
    got = _probe_dict(model, [x])
    backbone = model.get_layer("backbone")
    block = backbone.get_layer("block")
    pool1 = keras.Model(backbone.inputs, backbone.get_layer("pool1").output)([x])
    conv2 = block.get_layer("conv2")(pool1)
    assert np.allclose(got["backbone/pool1"], pool1, atol=1e-6)
    assert np.allclose(got["backbone/block/conv2"], conv2, atol=1e-5)
    assert np.allclose(got["output"], model(x), atol=1e-6)
    assert got["backbone/conv1"].shape == (3, 26, 26, 8)


def test_builtin_lstm_sequence_and_vector_outputs():
    model = builtin_model("lstm")
    x = np.random.default_rng(5).random((2, 28, 28), dtype=np.float32)
    got = _probe_dict(model, [x])
    seq = model.get_layer("lstm")(x)
    assert got["lstm"].shape == (2, 28, 32)
    assert np.allclose(got["lstm"], seq, atol=1e-5)
    assert np.allclose(got["lstm_2"], model.get_layer("lstm_2")(seq), atol=1e-5)


def test_builtins_are_seeded():
    a, b = builtin_model("cnn"), builtin_model("cnn")
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(np.asarray(wa), np.asarray(wb))


def test_probe_built_once_per_capture(tmp_path):
    from pipeline.capturing.stream import capture_model

    model = two_input_model()
    rng = np.random.default_rng(6)
    xi = rng.random((5, 8, 8, 1), dtype=np.float32)
    xm = rng.random((5, 5), dtype=np.float32)
    cfg = Config(
        capture=CaptureConfig(out=str(tmp_path / "run"), batch_size=2, architecture=False),
        select=SelectConfig(rule="all"),
    )
    before = Probe.builds
    run = capture_model(model, cfg, patterns=[xi, xm], quiet=True)
    assert Probe.builds == before + 1
    inner = model.get_layer("backbone").get_layer("conv_a")(xi)
    stored = np.stack([run.get("backbone/conv_a", i) for i in range(5)])
    assert np.allclose(stored, inner, atol=1e-6)
    dirs = [rec["dir"] for rec in run.info["layers"]][:2]
    assert [d.split("-", 1)[1] for d in dirs] == ["backbone_conv_a", "backbone_block_1_conv_b"]
    assert run.info["input_names"] == ["image", "meta"]


def test_select_nested_by_glob_and_class():
    infos = layer_infos(two_input_model())
    chosen = select_layers(
        infos, SelectConfig(rule="all", include=("backbone/*",), classes=("Conv2D",))
    )
    assert [i.name for i in chosen] == ["backbone/conv_a", "backbone/block.1/conv.b"]
    with pytest.raises(SelectionError, match="no layer qualifies under the seed rule"):
        select_layers(infos, SelectConfig(rule="seed"))


def test_subclassed_model_holding_a_sequential_is_captured():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.inner = keras.Sequential(
                [L.Dense(2, name="d", kernel_initializer=_init(7))], name="inner"
            )

        def call(self, x):
            return self.inner(x)

    model = Sub()
    x = np.random.default_rng(7).random((3, 3), dtype=np.float32)
    model(x)
    infos = layer_infos(model)
    # Once refused (subclassed models were out of reach); now their calls are intercepted.
    assert [i.name for i in infos] == ["inner/d", "inner"]
    outs = Probe(model, infos)([x])
    np.testing.assert_allclose(outs[0], model.inner.get_layer("d")(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs[1], model(x), rtol=1e-6, atol=1e-6)


def test_free_size_backbone_gets_outer_shapes():
    free = keras.Input((None, None, 1))
    backbone = keras.Model(
        free, L.Conv2D(2, 3, name="conv", kernel_initializer=_init(11))(free), name="bb"
    )
    image = keras.Input((10, 12, 1))
    model = keras.Model(image, L.GlobalMaxPooling2D(name="gmp")(backbone(image)))
    infos = {i.name: i.shape for i in layer_infos(model)}
    assert infos["bb/conv"] == (8, 10, 2) and infos["bb"] == (8, 10, 2)
    x = np.random.default_rng(7).random((2, 10, 12, 1), dtype=np.float32)
    got = _probe_dict(model, [x])
    assert np.allclose(got["bb/conv"], backbone.get_layer("conv")(x), atol=1e-6)
