"""Layers the graph cannot show, captured by intercepting layer calls while the probe is traced:
subclassed models, layers inside custom layers, shared layers called twice, names TensorFlow
refuses in a name scope. Every stored output equals what calling those layer objects by hand
(eagerly, in Keras) gives; the user's model and keras.layers.Layer are left as they were."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

keras = need_keras()

from pipeline import CaptureCallback, cli, open_run  # noqa: E402
from pipeline.capturing.intercept import Tracer, intercepting, scope_safe  # noqa: E402
from pipeline.capturing.probe import Probe, layer_infos  # noqa: E402
from pipeline.capturing.stream import capture_model  # noqa: E402
from pipeline.config import CaptureConfig, Config, SelectConfig  # noqa: E402
from pipeline.errors import ModelRunError, SpecError  # noqa: E402

L = keras.layers
TIGHT = {"rtol": 1e-6, "atol": 1e-6}


def _init(seed: int):
    return keras.initializers.GlorotUniform(seed=seed)


class Block(L.Layer):
    """A residual block holding sublayers: the graph shows it as one layer."""

    def __init__(self, units: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(units, name="inner", kernel_initializer=_init(seed))
        self.mix = L.Dense(units, name="mix", kernel_initializer=_init(seed + 1))
        self.act = L.ReLU(name="act")

    def call(self, x):
        return self.act(x + self.mix(self.inner(x)))


class Net(keras.Model):
    """TensorFlow-quickstart style: layers as attributes, a call; a block called twice and a
    shared layer called twice."""

    def __init__(self):
        super().__init__(name="net")
        self.conv = L.Conv2D(2, 3, name="conv", kernel_initializer=_init(1))
        self.flat = L.Flatten(name="flat")
        self.stem = L.Dense(4, name="stem", kernel_initializer=_init(2))
        self.block = Block(4, seed=3, name="block")
        self.shared = L.Dense(4, activation="tanh", name="shared", kernel_initializer=_init(5))
        self.head = L.Dense(2, name="head", kernel_initializer=_init(6))

    def call(self, x):
        x = self.stem(self.flat(self.conv(x)))
        x = self.shared(self.shared(self.block(x)))
        return self.head(self.block(x))


def _by_hand(net: Net, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer call of ``net`` made eagerly, one layer object at a time."""
    out: dict[str, np.ndarray] = {}

    def block(prefix: str, h):
        b = net.block
        out[f"{prefix}/inner"] = inner = b.inner(h)
        out[f"{prefix}/mix"] = mix = b.mix(inner)
        out[f"{prefix}/act"] = out[prefix] = b.act(h + mix)
        return out[prefix]

    out["conv"] = net.conv(x)
    out["flat"] = net.flat(out["conv"])
    out["stem"] = net.stem(out["flat"])
    h = block("block", out["stem"])
    out["shared"] = net.shared(h)
    out["shared#2"] = net.shared(out["shared"])
    out["head"] = net.head(block("block#2", out["shared#2"]))
    return {k: np.asarray(v) for k, v in out.items()}


def _config(tmp_path: Path, **select) -> Config:
    return Config(
        capture=CaptureConfig(out=str(tmp_path / "run"), batch_size=2, architecture=False),
        select=SelectConfig(rule="all", **select),
    )


def _net_and_data():
    net = Net()
    x = np.random.default_rng(0).random((5, 6, 6, 1), dtype=np.float32)
    net(x[:1])  # built by a call, as after training
    return net, x


def test_subclassed_model_every_call_equals_keras(tmp_path):
    net, x = _net_and_data()
    builds, traces = Probe.builds, Probe.traces
    run = capture_model(net, _config(tmp_path), patterns=[x], quiet=True)
    assert (Probe.builds - builds, Probe.traces - traces) == (1, 1)  # 3 batches, one trace
    assert run.layers == [
        *("conv", "flat", "stem"),
        *("block/inner", "block/mix", "block/act", "block"),
        *("shared", "shared#2"),
        *("block#2/inner", "block#2/mix", "block#2/act", "block#2"),
        "head",
    ]
    expected = _by_hand(net, x)
    for name in run.layers:
        stored = np.stack([run.get(name, i) for i in range(len(x))])
        np.testing.assert_allclose(stored, expected[name], err_msg=name, **TIGHT)
    np.testing.assert_allclose(run.get("head", 4), net(x)[4], **TIGHT)
    classes = {i.name: (i.class_name, i.params) for i in layer_infos(net)}
    assert classes["block"] == ("Block", 2 * (4 * 4 + 4))
    assert classes["shared#2"] == ("Dense", 4 * 4 + 4)


def test_selection_applies_to_call_paths(tmp_path):
    net, x = _net_and_data()
    run = capture_model(net, _config(tmp_path, include=("block*/*",)), patterns=[x], quiet=True)
    assert run.layers == [f"{b}/{n}" for b in ("block", "block#2") for n in ("inner", "mix", "act")]
    expected = _by_hand(net, x)
    np.testing.assert_allclose(run.get("block#2/mix", 3), expected["block#2/mix"][3], **TIGHT)


def _functional_with_blocks() -> keras.Model:
    """A custom block at the top level and one inside a nested functional backbone."""
    inner_in = keras.Input((4,), name="bb_in")
    bb = keras.Model(inner_in, Block(4, seed=11, name="deep")(inner_in), name="backbone")
    x = keras.Input((3,), name="x")
    h = L.Dense(4, name="pre", kernel_initializer=_init(10))(x)
    h = Block(4, seed=12, name="blk")(h)
    h = bb(h)
    return keras.Model(x, L.Dense(2, name="out", kernel_initializer=_init(13))(h), name="f")


def test_functional_model_custom_blocks_inside_captured_top_level_unchanged(tmp_path):
    model = _functional_with_blocks()
    graph = [(i.index, i.name) for i in layer_infos(model) if "/" not in i.name]
    assert graph == [(0, "x"), (1, "pre"), (2, "blk"), (5, "backbone"), (6, "out")]
    names = [i.name for i in layer_infos(model)]
    assert names == [
        *("x", "pre", "blk/inner", "blk/mix", "blk/act", "blk"),
        *("backbone/bb_in", "backbone/deep/inner", "backbone/deep/mix", "backbone/deep/act"),
        *("backbone/deep", "backbone", "out"),
    ]
    x = np.random.default_rng(1).random((5, 3), dtype=np.float32)
    run = capture_model(model, _config(tmp_path), patterns=[x], quiet=True)
    blk, deep = model.get_layer("blk"), model.get_layer("backbone").get_layer("deep")
    pre = model.get_layer("pre")(x)
    want = {"pre": pre, "blk/inner": blk.inner(pre), "out": model(x)}
    want["blk/mix"] = blk.mix(want["blk/inner"])
    want["blk"] = blk(pre)
    want["backbone/deep/inner"] = deep.inner(want["blk"])
    want["backbone/deep/mix"] = deep.mix(want["backbone/deep/inner"])
    want["backbone/deep"] = deep(want["blk"])
    for name, value in want.items():
        stored = np.stack([run.get(name, i) for i in range(5)])
        np.testing.assert_allclose(stored, value, err_msg=name, **TIGHT)


def test_nested_functional_model_after_another_layer(tmp_path):
    """Its inner layers come from the graph rebuild (a clone onto fresh inputs, run on the
    outer tensor): cloned onto the intermediate tensor itself, Keras left it unconnected."""
    inner_in = keras.Input((4,))
    sub = keras.Model(inner_in, L.Dense(3, name="plain", kernel_initializer=_init(40))(inner_in))
    x = keras.Input((2,), name="x")
    h = sub(L.Dense(4, name="pre", kernel_initializer=_init(41))(x))
    model = keras.Model(x, h, name="outer")
    data = np.random.default_rng(4).random((3, 2), dtype=np.float32)
    run = capture_model(
        model, _config(tmp_path, include=(f"{sub.name}/*",)), patterns=[data], quiet=True
    )
    assert run.layers == [f"{sub.name}/plain"]
    stored = np.stack([run.get(run.layers[0], i) for i in range(3)])
    np.testing.assert_allclose(stored, model(data), **TIGHT)


def test_multi_head_attention_sublayers_are_listed_and_captured():
    x_in = keras.Input((5, 8), name="seq")
    mha = L.MultiHeadAttention(2, 4, name="mha", kernel_initializer=_init(20))
    model = keras.Model(x_in, mha(x_in, x_in), name="attn")
    names = [i.name for i in layer_infos(model)]
    assert {"mha/query", "mha/key", "mha/value", "mha/attention_output"} <= set(names)
    assert names.index("mha/query") < names.index("mha")
    x = np.random.default_rng(2).random((3, 5, 8), dtype=np.float32)
    wanted = [i for i in layer_infos(model) if i.name in ("mha/query", "mha")]
    query, out = Probe(model, wanted)([x])
    np.testing.assert_allclose(query, mha.query_dense(x), **TIGHT)
    np.testing.assert_allclose(out, model(x), **TIGHT)


def _odd_model() -> keras.Model:
    x = keras.Input((4,), name="in put")
    h = L.Dense(3, name="wide one", kernel_initializer=_init(30))(x)
    h = Block(3, seed=31, name="bloc à deux")(h)
    return keras.Model(x, L.Dense(2, name="médian", kernel_initializer=_init(33))(h), name="mé")


def test_names_tensorflow_refuses_are_captured_under_their_own_names(tmp_path):
    model = _odd_model()
    x = np.random.default_rng(3).random((5, 4), dtype=np.float32)
    names_before = [layer.name for layer in model.layers] + [model.name]
    run = capture_model(model, _config(tmp_path), patterns=[x], quiet=True)
    assert run.layers == [
        *("wide one", "bloc à deux/inner", "bloc à deux/mix", "bloc à deux/act"),
        *("bloc à deux", "médian"),
    ]
    wide = model.get_layer("wide one")(x)
    bloc = model.get_layer("bloc à deux")
    eager = {"wide one": wide, "bloc à deux/inner": bloc.inner(wide), "bloc à deux": bloc(wide)}
    eager["médian"] = model(x)
    for name, value in eager.items():
        stored = np.stack([run.get(name, i) for i in range(5)])
        np.testing.assert_allclose(stored, value, err_msg=name, **TIGHT)
    assert [layer.name for layer in model.layers] + [model.name] == names_before
    assert scope_safe("bloc à deux") == "bloc___deux" and scope_safe("ok.name-1") == "ok.name-1"


class Broken(L.Layer):
    """Declares its output shape, so the functional model builds; its call cannot run."""

    def compute_output_shape(self, shape):
        return shape

    def call(self, x):
        return keras.ops.matmul(x, keras.ops.ones((7, 2)))


BROKEN_FACTORY = """
import keras
from keras import layers as L


class Broken(L.Layer):
    def compute_output_shape(self, shape):
        return shape

    def call(self, x):
        return keras.ops.matmul(x, keras.ops.ones((7, 2)))


def build():
    x = keras.Input((3,))
    h = L.Dense(3, name="fine one")(x)
    return keras.Model(x, Broken(name="broken")(h), name="bad")
"""


def test_model_that_cannot_run_is_one_line_exit_2_and_no_run(tmp_path, capsys):
    factory = tmp_path / "bad_model.py"
    factory.write_text(BROKEN_FACTORY)
    out = tmp_path / "run"
    argv = ["capture", "--model", f"{factory}:build", "--patterns", "random:4", "--out", str(out)]
    code = cli.main([*argv, "--select", "all", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "layer 'broken' (Broken) failed" in err and "Dimensions must be equal" in err
    assert not (out / "run.json").exists() and not (out / "manifest.jsonl").exists()


def test_user_model_and_keras_unchanged_after_capture_and_after_failure(tmp_path):
    original = keras.layers.Layer.__dict__["__call__"]
    net, x = _net_and_data()
    before = np.asarray(net(x))
    weights = [np.array(w) for w in net.weights]
    capture_model(net, _config(tmp_path), patterns=[x], quiet=True)
    assert keras.layers.Layer.__dict__["__call__"] is original
    np.testing.assert_array_equal(np.asarray(net(x)), before)
    for w, v in zip(net.weights, weights, strict=True):
        np.testing.assert_array_equal(np.asarray(w), v)

    i = keras.Input((3,))
    bad = keras.Model(i, Broken(name="bro ken")(L.Dense(3, name="d")(i)), name="bad")
    with pytest.raises(ModelRunError, match=r"layer 'bro ken' \(Broken\)"):
        Probe(bad, layer_infos(bad)[1:])
    assert keras.layers.Layer.__dict__["__call__"] is original
    assert [layer.name for layer in bad.layers][1:] == ["d", "bro ken"]


def test_interception_records_only_its_own_thread():
    dense = L.Dense(2, name="other_thread")
    x = np.ones((1, 3), np.float32)
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(dense(x)))
    with intercepting(tracer := Tracer()):
        worker.start()
        worker.join()
    assert tracer.calls == [] and len(seen) == 1  # the other thread's call ran, unrecorded


def test_subclassed_model_never_called_is_a_clear_error():
    with pytest.raises(SpecError, match="never called; call it once"):
        layer_infos(Net())


def test_capture_callback_on_a_subclassed_model(tmp_path):
    keras.utils.set_random_seed(0)
    net, x = _net_and_data()
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    y = np.zeros((5, 2), np.float32)
    with CaptureCallback(tmp_path / "run", x[:3], select=SelectConfig(rule="all")) as cb:
        net.fit(x, y, epochs=2, batch_size=5, callbacks=[cb], verbose=0)
    run = open_run(tmp_path / "run")
    assert "block#2/mix" in run.layers and "shared#2" in run.layers
    last = run.epochs[-1]
    expected = _by_hand(net, x[:3])  # the weights at the end of the last epoch
    for name in ("block#2/mix", "shared#2", "head"):
        stored = np.stack([run.get(name, i, epoch=last) for i in range(3)])
        np.testing.assert_allclose(stored, expected[name], err_msg=name, rtol=1e-5, atol=1e-6)


def test_functional_shared_layer_is_stored_once_per_call(tmp_path):
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = L.Dense(4, name="shared", kernel_initializer=_init(7))
    x, y = shared(a), shared(b)
    z = L.Add(name="sum")([x, shared(L.ReLU(name="relu")(x)), y])
    model = keras.Model([a, b], z)
    rng = np.random.default_rng(1)
    xa, xb = rng.random((5, 4), dtype=np.float32), rng.random((5, 4), dtype=np.float32)
    run = capture_model(model, _config(tmp_path), patterns=[xa, xb], quiet=True)
    assert set(run.layers) == {"shared", "shared#2", "shared#3", "relu", "sum"}
    calls = [shared(xa), shared(xb), shared(np.maximum(shared(xa), 0))]
    by_call = {}
    for name in ("shared", "shared#2", "shared#3"):
        stored = np.stack([run.get(name, i) for i in range(5)])
        by_call[name] = next(k for k, c in enumerate(calls) if np.allclose(stored, c, **TIGHT))
    assert sorted(by_call.values()) == [0, 1, 2]  # every call stored once, none twice
    assert by_call["shared"] == 0  # the first call keeps the plain name
    np.testing.assert_allclose(
        np.stack([run.get("sum", i) for i in range(5)]), model([xa, xb]), **TIGHT
    )
