"""What identifies a run (run.json and its fingerprint, one builder for batch capture and the
training callback) and what a resumed capture still has to write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

need_keras()

from pipeline import CaptureCallback  # noqa: E402
from pipeline.capturing.identity import fingerprint, layer_records  # noqa: E402
from pipeline.capturing.pending import Pending, pending_batches  # noqa: E402
from pipeline.capturing.stream import capture_model  # noqa: E402
from pipeline.config import Config, SelectConfig  # noqa: E402
from pipeline.store import RunWriter  # noqa: E402

ALL = SelectConfig(rule="all")
X = np.linspace(0, 1, 10 * 6 * 5, dtype=np.float32).reshape(10, 6, 5)


@pytest.fixture(scope="module")
def fixed_model(keras):
    """A tiny model whose weights are set, not drawn: its digests do not depend on a seed."""
    inp = keras.Input((6, 5), name="x")
    h = keras.layers.Dense(4, name="a")(inp)
    out = keras.layers.Dense(2, name="b")(keras.layers.Flatten(name="f")(h))
    model = keras.Model(inp, out, name="tiny")
    model.set_weights(
        [
            np.linspace(-1, 1, int(np.prod(w.shape)), dtype=np.float32).reshape(w.shape)
            for w in model.weights
        ]
    )
    return model


def batch_config(out: Path, batch_size: int = 4) -> Config:
    cfg = Config()
    capture = dataclasses.replace(
        cfg.capture,
        model="m.keras",
        out=str(out),
        batch_size=batch_size,
        patterns="random:7:1",
        architecture=False,
    )
    return dataclasses.replace(cfg, capture=capture, select=ALL)


# The fingerprints Passage 0.1.0 gave these runs before run.json had one builder: a run begun
# then must resume, not be refused as a different run.
def test_training_runs_keep_their_fingerprints(tmp_path: Path, fixed_model) -> None:
    def planned(**kw) -> dict:
        return CaptureCallback(tmp_path / "run", X, select=ALL, **kw).plan(fixed_model)

    assert planned(batch_size=4)["fingerprint"] == "256369a5bbe0b057"
    info = planned(batch_size=16, every_batches=3, fingerprint_extra={"seed": 1})
    assert info["fingerprint"] == "4c4b2cd165046eb6"


def test_batch_runs_keep_their_fingerprints(tmp_path: Path, fixed_model) -> None:
    run = capture_model(fixed_model, batch_config(tmp_path / "spec"), quiet=True)
    assert run.info["fingerprint"] == "dfc704be34e36364"
    run = capture_model(fixed_model, batch_config(tmp_path / "array"), patterns=X, quiet=True)
    assert run.info["fingerprint"] == "e56567a57fdefa27"


def test_both_modes_describe_a_run_alike(tmp_path: Path, fixed_model) -> None:
    batch = capture_model(fixed_model, batch_config(tmp_path / "b"), quiet=True).info
    train = CaptureCallback(
        tmp_path / "t", X[:7], select=ALL, batch_size=4, info={"model": "m.keras", "extra": 1}
    ).plan(fixed_model)
    common = ["model", "model_name", "inputs", "layers", "num_patterns", "batch_size", "versions"]
    assert {k: batch[k] for k in common} == {k: train[k] for k in common}
    assert (batch["mode"], train["mode"]) == ("batch", "train")
    assert batch["patterns"] == "random:7:1" and train["patterns"] == "<array>"
    assert batch["input_names"] == ["x"] and batch["weights_crc32"]
    assert train["time"] == {"unit": "epoch", "every": 1, "every_batches": 0}
    assert train["extra"] == 1 and "input_names" not in train


def test_the_fingerprint_hashes_the_parts_not_their_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert len(fingerprint({})) == 16


def test_pending_batches_are_those_a_layer_lacks(tmp_path: Path, fixed_model) -> None:
    from pipeline.capturing.probe import layer_infos

    infos = [i for i in layer_infos(fixed_model) if i.name in ("a", "b")]
    info = {"fingerprint": "pending", "layers": layer_records(infos)}
    with RunWriter(tmp_path / "run", info) as writer:
        assert pending_batches(writer, ["a", "b"], 3, 10, 4) == [
            Pending(0, 4, frozenset({"a", "b"})),
            Pending(4, 4, frozenset({"a", "b"})),
            Pending(8, 2, frozenset({"a", "b"})),
        ]
        writer.write("a", 3, 0, np.zeros((4, 6, 4), np.float32))
        writer.write("a", 3, 8, np.zeros((2, 6, 4), np.float32))
        writer.write("b", 3, 8, np.zeros((2, 2), np.float32))
        writer.write("b", 2, 0, np.zeros((4, 2), np.float32))  # another record
        assert pending_batches(writer, ["a", "b"], 3, 10, 4) == [
            Pending(0, 4, frozenset({"b"})),
            Pending(4, 4, frozenset({"a", "b"})),
        ]
    with RunWriter(tmp_path / "run", info) as writer:  # resumed: read from the manifest
        assert [p.first for p in pending_batches(writer, ["a", "b"], 3, 10, 4)] == [0, 4]
        assert pending_batches(writer, ["b"], 2, 4, 4) == []
