"""A capture into a folder holding another run is refused with one line naming the part of the
run's identity that differs (run.json ``identity``: one digest per fingerprint part) and what to
do; runs written before ``identity`` existed get the general message."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from pipeline.store.refusal import AGAIN, WEIGHTS_ADVICE, refusal

UNSEEDED = """
import keras


def build():
    x = keras.Input((6,), name="x")
    return keras.Model(x, keras.layers.Dense(3, name="head")(x), name="net")
"""
SEEDED = UNSEEDED.replace("def build():\n", "def build():\n    keras.utils.set_random_seed(3)\n")


def capture(out: Path, *extra: str) -> int:
    return main(["-q", "capture", "--out", str(out), "--no-architecture", *extra])


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("passage: error: ") and err[0].endswith(AGAIN)
    return err[0]


def test_unseeded_factory_weights_are_named_and_seeding_it_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = tmp_path / "net.py"
    factory.write_text(UNSEEDED)
    flags = ("--model", f"{factory}:build", "--patterns", "random:4", "--select", "all")
    out = tmp_path / "run"
    assert capture(out, *flags) == 0
    held = orjson.loads((out / "run.json").read_bytes())
    assert capture(out, *flags) == 2  # the same command: the factory drew new weights
    line = error_line(capsys).split("holds a different run")[1]
    assert "what differs: the model's weights: " in line
    assert f"{held['weights_crc32']!r} in the run" in line
    assert "seed the factory (keras.utils.set_random_seed)" in line
    assert "save the model to a .keras file" in line
    assert "patterns" not in line and "layers" not in line  # only the cause is named
    assert orjson.loads((out / "run.json").read_bytes()) == held  # refused: left as it was
    # Seeded as the message says, the same command resumes.
    factory.write_text(SEEDED)
    assert capture(out, *flags, "--overwrite") == 0
    assert capture(out, *flags) == 0


def test_changed_patterns_selection_and_batch_size_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert capture(out, "--patterns", "random:3", "--batch-size", "2") == 0
    assert capture(out, "--patterns", "random:3:1", "--batch-size", "2") == 2
    line = error_line(capsys)
    assert "what differs: the patterns: 'random:3' in the run, 'random:3:1' now; pass" in line
    assert "weights" not in line
    assert capture(out, "--patterns", "random:3", "--batch-size", "2", "--select", "all") == 2
    line = error_line(capsys)
    assert "what differs: the selected layers (selection rule" in line
    assert "3 layer(s) in the run, 6 now; now also dense_3, flatten, output;" in line
    assert capture(out, "--patterns", "random:3", "--batch-size", "2", "--include", "dense") == 2
    assert "1 now; no longer my_dense, dense_2;" in error_line(capsys)
    assert capture(out, "--patterns", "random:3", "--batch-size", "1") == 2
    assert "what differs: the batch size: 2 in the run, 1 now; pass" in error_line(capsys)
    assert capture(out, "--patterns", "random:5:1", "--batch-size", "2", "--format", "json") == 2
    line = error_line(capsys)
    for part in ("the patterns: ", "the number of patterns: 3 in the run, 5 now", "data format"):
        assert part in line
    assert capture(out, "--patterns", "random:3", "--batch-size", "2") == 0  # the same: resumes


def test_a_run_written_before_identity_parts_gets_the_general_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert capture(out, "--patterns", "random:3") == 0
    info = orjson.loads((out / "run.json").read_bytes())
    del info["identity"]
    (out / "run.json").write_bytes(orjson.dumps(info))
    assert capture(out, "--patterns", "random:3") == 0  # the fingerprint alone: resumed
    (out / "run.json").write_bytes(orjson.dumps(info))  # the resume wrote this version's
    assert capture(out, "--patterns", "random:4") == 2
    line = error_line(capsys)
    assert "holds a different run (model 'builtin:seed', patterns 'random:3'; written by" in line


def run_info(**identity: str) -> dict:
    return {
        "fingerprint": "".join(identity.values()),
        "identity": identity,
        "versions": {"passage": "1.0"},
        "layers": [],
    }


def test_parts_only_one_side_has_name_the_other_version() -> None:
    held = run_info(weights="a", model="m")
    new = {**run_info(weights="a", model="m", extra="x"), "versions": {"passage": "2.0"}}
    line = refusal("RUN", held, new)
    assert "what differs: the identity part 'extra'" in line
    assert "the run was written by Passage 1.0, this is 2.0" in line
    assert line.endswith(AGAIN) and WEIGHTS_ADVICE not in line
    edited = {**held, "fingerprint": "edited"}
    assert "though no part of it differs (run.json was edited?)" in refusal("RUN", edited, held)
    assert "\n" not in line


def test_another_model_gets_no_advice_about_seeding() -> None:
    held = {**run_info(model="a", weights="w"), "model": "a.keras", "weights_crc32": "0000aaaa"}
    new = {**run_info(model="b", weights="v"), "model": "b.keras", "weights_crc32": "0000bbbb"}
    line = refusal("RUN", held, new)
    assert "what differs: the model spec: 'a.keras' in the run, 'b.keras' now; the model's " in line
    assert "weights: '0000aaaa' in the run, '0000bbbb' now; pass --overwrite" in line
    assert WEIGHTS_ADVICE not in line
    alone = refusal("RUN", held, {**held, **run_info(model="a", weights="v")})
    assert f"the model's weights; {WEIGHTS_ADVICE}; {AGAIN}" in alone  # no CRC to show here
