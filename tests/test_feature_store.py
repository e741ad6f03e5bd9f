"""The feature files of ``passage visualize`` in the store: written through ``FeatureWriter``
into real runs, read back through ``Run``, checked by ``verify``, dropped for ``--overwrite``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from analysis_helpers import write_run

from pipeline.analysis import analyze
from pipeline.cli import main
from pipeline.errors import NotInRunError, StoreError
from pipeline.store import MANIFEST, open_run
from pipeline.store.feature_files import (
    FEATURE_KINDS,
    FeatureWriter,
    drop_features,
    feature_key,
    feature_path,
    layer_settings,
    parse_feature_key,
    read_settings,
    remove_temporaries,
    sheet_path,
    write_settings,
)
from pipeline.store.naming import layer_dir
from pipeline.store.verify import check_run

INPUT = (6, 6, 3)
K = 2
SETTINGS = {
    "steps": 64,
    "seed": 3,
    "lr": 0.05,
    "size": None,
    "space": "image",
    "low": 0.0,
    "high": 1.0,
    "preprocess": None,
    "transforms": True,
    "top": K,
    "samples": 8,
    "noise": 0.15,
    "channels": [0, 1, 2, 3],
    "batch": 3,
    "weights": "sha256:abc",
    "version": 1,
}


def layers_of(rng: np.random.Generator, n: int, epochs: int | None = None) -> dict:
    lead = (n,) if epochs is None else (epochs, n)
    return {
        "conv": rng.normal(size=(*lead, 4, 4, 4)).astype(np.float32),
        "dense": rng.normal(size=(*lead, 5)).astype(np.float32),
    }


def batch_arrays(rng: np.random.Generator, count: int, top: bool = True) -> dict:
    arrays = {
        "image": rng.random((count, *INPUT), dtype=np.float32),
        "activation": rng.normal(size=count).astype(np.float32),
    }
    if top:
        arrays["attribution"] = rng.normal(size=(count, K, *INPUT)).astype(np.float32)
        arrays["top_input"] = rng.random((count, K, *INPUT), dtype=np.float32)
        arrays["top_index"] = rng.integers(-1, 10, size=(count, K))
        arrays["top_value"] = rng.normal(size=(count, K)).astype(np.float32)
    return arrays


@pytest.fixture
def batch_run(tmp_path: Path):
    rng = np.random.default_rng(0)
    layers = layers_of(rng, 10)
    run = write_run(tmp_path / "run", layers, batch=4, info={"inputs": [list(INPUT)]})
    return run, layers


def write_features(run: Path, layer: str, epoch, top: bool = True, seed: int = 1) -> dict:
    """Channels 0-2 in a batch of 3, channel 3 alone; the arrays written, by kind."""
    rng = np.random.default_rng(seed)
    first, second = batch_arrays(rng, 3, top), batch_arrays(rng, 1, top)
    with FeatureWriter(run) as writer:
        entries = writer.write(layer, epoch, 0, first) + writer.write(layer, epoch, 3, second)
    assert [parse_feature_key(e.layer)[0] for e in entries] == 2 * [
        k for k in FEATURE_KINDS if k in first
    ]
    write_settings(run, layer, epoch, SETTINGS)
    return {kind: np.concatenate([first[kind], second[kind]]) for kind in first}


def test_keys_paths_and_pictures_are_named_by_the_contract(tmp_path: Path) -> None:
    assert feature_key("image", "conv/1") == "features.image:conv/1"
    assert parse_feature_key("features.top_index:a:b") == ("top_index", "a:b")
    for bad in ("conv", "features.bogus:conv", "features.image:", "features.image"):
        assert parse_feature_key(bad) is None
    with pytest.raises(StoreError, match="expected one of"):
        feature_key("sheet", "conv")
    assert feature_path("001-conv", None, "image", 64) == "features/001-conv/image-c000064.npy"
    assert (
        feature_path("001-conv", 7, "top_value", 0)
        == "features/001-conv/epoch-00007/top_value-c000000.npy"
    )
    assert sheet_path(tmp_path, "001-conv", None) == tmp_path / "features/001-conv.png"
    assert sheet_path(tmp_path, "001-conv", 7, "top") == tmp_path / (
        "features/001-conv.epoch-00007.top.png"
    )


def test_written_batches_read_back_equal_with_settings_and_dataset_best(batch_run) -> None:
    run_path, layers = batch_run
    analyze(run_path, cka=False, pictures=False, workers=1, quiet=True)
    before = open_run(run_path)
    wrote = write_features(run_path, "conv", None)
    run = open_run(run_path)
    # data consumers see exactly what they saw before
    assert run.entries == before.entries and run.epochs == [None]
    assert len(run.feature_entries) == 12
    assert all(e.path.startswith("features/000-conv/") for e in run.feature_entries)
    assert run.feature_layers == ["conv"] and run.feature_epochs("conv") == [None]
    assert run.feature_epochs("dense") == []
    # the best channel activation over the patterns, computed here from the layer itself
    best = layers["conv"].mean(axis=(1, 2)).max(axis=0)
    for c in range(4):
        got = run.feature("conv", c)
        np.testing.assert_array_equal(got["image"], wrote["image"][c])
        assert got["image"].dtype == np.float32 and got["image"].shape == INPUT
        assert got["activation"] == float(wrote["activation"][c])
        assert got["dataset_activation"] == pytest.approx(float(best[c]), rel=1e-6)
        assert (got["steps"], got["seed"], got["epoch"], got["space"]) == (64, 3, None, "image")
        assert (got["low"], got["high"], got["preprocess"]) == (0.0, 1.0, None)
        np.testing.assert_array_equal(run.attribution("conv", c), wrote["attribution"][c])
        top = run.top_patterns("conv", c)
        np.testing.assert_array_equal(top["index"], wrote["top_index"][c])
        assert top["index"].dtype == np.int64
        np.testing.assert_array_equal(top["value"], wrote["top_value"][c])
        np.testing.assert_array_equal(top["input"], wrote["top_input"][c])
    grid = run.features_of("conv")
    np.testing.assert_array_equal(grid["channels"], np.arange(4))
    np.testing.assert_array_equal(grid["images"], wrote["image"])
    np.testing.assert_array_equal(grid["activation"], wrote["activation"])
    np.testing.assert_allclose(grid["dataset_activation"], best, rtol=1e-6)
    assert grid["steps"] == 64 and grid["settings"] == SETTINGS and grid["epoch"] is None
    assert read_settings(run_path) == {"conv": {"batch": SETTINGS}}
    assert layer_settings(run_path, "conv", None) == SETTINGS
    assert layer_settings(run_path, "conv", 3) is None


def test_manifest_lines_hold_checksums_and_statistics(batch_run) -> None:
    run_path, _ = batch_run
    wrote = write_features(run_path, "dense", None)
    run = open_run(run_path)
    by_kind = {parse_feature_key(e.layer)[0]: e for e in run.feature_entries if e.first == 0}
    image = by_kind["image"]
    assert (image.count, image.shape, image.dtype) == (3, INPUT, "float32")
    assert image.min == pytest.approx(float(wrote["image"][:3].min()))
    assert image.max == pytest.approx(float(wrote["image"][:3].max()))
    assert image.checksum.startswith("crc32:") and image.nonfinite == 0
    assert (run_path / image.path).stat().st_size == image.bytes
    assert by_kind["activation"].shape == () and by_kind["top_index"].dtype == "int64"
    assert by_kind["attribution"].shape == (K, *INPUT)
    np.testing.assert_array_equal(np.load(run_path / image.path), wrote["image"][:3])


def test_json_runs_keep_feature_files_as_npy(tmp_path: Path) -> None:
    layers = layers_of(np.random.default_rng(5), 6)
    run_path = write_run(tmp_path / "run", layers, batch=3, fmt="json")
    wrote = write_features(run_path, "conv", None, top=False)
    run = open_run(run_path)
    np.testing.assert_array_equal(run.feature("conv", 3)["image"], wrote["image"][3])
    assert check_run(run).ok


def test_training_runs_keep_each_visualized_epoch(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    layers = layers_of(rng, 8, epochs=3)
    run_path = write_run(tmp_path / "run", layers, batch=4, epochs=[0, 1, 2])
    analyze(run_path, cka=False, pictures=False, workers=1, quiet=True)
    early = write_features(run_path, "conv", 0, seed=10)
    late = write_features(run_path, "conv", 2, seed=20)
    run = open_run(run_path)
    assert run.feature_epochs("conv") == [0, 2] and run.epochs == [0, 1, 2]
    assert (run_path / "features/000-conv/epoch-00002/image-c000003.npy").is_file()
    last = run.feature("conv", 1)
    assert last["epoch"] == 2
    np.testing.assert_array_equal(last["image"], late["image"][1])
    first = run.feature("conv", 1, epoch=0)
    np.testing.assert_array_equal(first["image"], early["image"][1])
    best0 = layers["conv"][0].mean(axis=(1, 2)).max(axis=0)
    assert first["dataset_activation"] == pytest.approx(float(best0[1]), rel=1e-6)
    np.testing.assert_array_equal(run.attribution("conv", 3, epoch=0), early["attribution"][3])
    with pytest.raises(NotInRunError, match=r"not visualized at epoch 1 .*epochs: \[0, 2\]"):
        run.feature("conv", 0, epoch=1)
    assert "at epochs 0, 2" in _info(run_path)


def _info(run_path: Path) -> str:
    from pipeline.store.verify import info_table

    return info_table(open_run(run_path))


def test_what_was_not_visualized_names_the_command(batch_run) -> None:
    run_path, _ = batch_run
    run = open_run(run_path)
    with pytest.raises(NotInRunError, match=rf"passage visualize {run_path} --layers conv"):
        run.feature("conv", 0)
    with pytest.raises(NotInRunError, match="not in run"):
        run.feature("nope", 0)
    assert run.feature_layers == [] and run.feature_channels("conv").size == 0
    write_features(run_path, "conv", None, top=False)
    run = open_run(run_path)
    with pytest.raises(NotInRunError, match=r"channel 9 .*visualized channels: 0-3.*--channels 9"):
        run.feature("conv", 9)
    # visualized without an analysis: no top patterns, NaN as the dataset's best
    assert np.isnan(run.feature("conv", 0)["dataset_activation"])
    assert np.isnan(run.features_of("conv")["dataset_activation"]).all()
    with pytest.raises(NotInRunError, match=r"passage analyze .*, then `passage visualize"):
        run.attribution("conv", 0)
    assert "features: 4 file(s)" in _info(run_path) and "conv (4 channel(s))" in _info(run_path)


def test_done_lists_complete_batches_and_a_rerun_replaces_them(batch_run) -> None:
    run_path, _ = batch_run
    rng = np.random.default_rng(4)
    with FeatureWriter(run_path) as writer:
        assert writer.done("conv", None) == {kind: set() for kind in FEATURE_KINDS}
        writer.write("conv", None, 0, batch_arrays(rng, 3, top=False))
        writer.write("conv", None, 3, batch_arrays(rng, 1))
        done = writer.done("conv", None)
    assert done["image"] == done["activation"] == {0, 3}
    assert done["attribution"] == done["top_index"] == {3}
    assert FeatureWriter(run_path).done("dense", None)["image"] == set()
    # a killed writer: one file gone, a manifest line cut in the middle
    entry = next(e for e in open_run(run_path).feature_entries if e.layer == "features.image:conv")
    (run_path / entry.path).unlink()
    with (run_path / MANIFEST).open("ab") as fh:
        fh.write(b'{"path": "features/000-conv/image-c0000')
    with FeatureWriter(run_path) as writer:
        assert writer.done("conv", None)["image"] == {3}
        again = batch_arrays(np.random.default_rng(9), 3, top=False)
        writer.write("conv", None, 0, again)
        assert writer.done("conv", None)["image"] == {0, 3}
    run = open_run(run_path)
    assert run.bad_manifest_lines == []
    np.testing.assert_array_equal(run.features_of("conv")["images"][:3], again["image"])
    assert check_run(run).ok


def test_writer_refuses_batches_that_do_not_fit(batch_run) -> None:
    run_path, _ = batch_run
    rng = np.random.default_rng(6)
    good = batch_arrays(rng, 2)
    cases = [
        ({**good, "activation": good["activation"][:1]}, "one channel count"),
        ({**good, "top_value": good["top_value"][:, :1]}, "one number K"),
        ({**good, "top_index": good["top_value"]}, "expected integers"),
        ({**good, "image": good["image"][:, :3]}, "one input shape"),
        ({**good, "sheet": good["image"]}, "expected kinds among"),
        ({**good, "activation": good["activation"][:, None]}, r"\(count,\)"),
    ]
    with FeatureWriter(run_path) as writer:
        for arrays, message in cases:
            with pytest.raises(StoreError, match=message):
                writer.write("conv", None, 0, arrays)
        with pytest.raises(NotInRunError, match="not in run"):
            writer.write("nope", None, 0, good)
    assert open_run(run_path).feature_entries == []


def verify_lines(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["verify", str(run)])
    return code, capsys.readouterr().out.splitlines()


def test_verify_checks_feature_files_and_their_folder(batch_run, capsys) -> None:
    run_path, _ = batch_run
    write_features(run_path, "conv", None)
    for kind in ("sheet", "top"):
        sheet_path(run_path, "000-conv", None, kind).write_bytes(b"\x89PNG picture")
    code, lines = verify_lines(run_path, capsys)
    assert code == 0 and lines == ["OK: 18 file(s) checked, 0 missing, 0 corrupt, 0 orphan(s)"]
    image = run_path / feature_path("000-conv", None, "image", 3)
    data = bytearray(image.read_bytes())
    data[-1] ^= 0x01
    image.write_bytes(bytes(data))
    (run_path / feature_path("000-conv", None, "top_value", 0)).unlink()
    (run_path / "features/000-conv/stray.npy").write_bytes(b"x")
    (run_path / "features/000-conv/activation-c000003.npy.tmp77").write_bytes(b"x")
    code, lines = verify_lines(run_path, capsys)
    assert code == 1
    assert any(
        line.startswith("corrupt: features/000-conv/image-c000003.npy: checksum") for line in lines
    )
    assert "missing: features/000-conv/top_value-c000000.npy" in lines
    assert "orphan: features/000-conv/stray.npy (not in manifest)" in lines
    assert (
        "orphan: features/000-conv/activation-c000003.npy.tmp77 "
        "(temporary file of an interrupted write)"
    ) in lines
    assert lines[-1] == "PROBLEMS: 18 file(s) checked, 1 missing, 1 corrupt, 2 orphan(s)"
    with pytest.raises(StoreError, match="checksum"):
        open_run(run_path).feature("conv", 3)
    assert remove_temporaries(run_path) == 1
    assert not any("tmp77" in line for line in verify_lines(run_path, capsys)[1])


def test_drop_features_leaves_a_consistent_run(batch_run, capsys) -> None:
    run_path, _ = batch_run
    write_features(run_path, "conv", None)
    write_features(run_path, "dense", None, top=False)
    sheet_path(run_path, "000-conv", None).write_bytes(b"picture")
    (run_path / "features/000-conv/image-c000000.npy.tmp5").write_bytes(b"x")
    data_before = open_run(run_path).entries
    assert drop_features(run_path, "conv", None) == 14  # 12 listed, a temporary, a sheet
    run = open_run(run_path)
    assert run.feature_layers == ["dense"] and run.entries == data_before
    assert {parse_feature_key(e.layer)[1] for e in run.feature_entries} == {"dense"}
    assert layer_settings(run_path, "conv", None) is None
    assert layer_settings(run_path, "dense", None) == SETTINGS
    assert not list((run_path / "features/000-conv").iterdir())
    code, lines = verify_lines(run_path, capsys)
    assert code == 0, lines
    assert drop_features(run_path, "conv", None) == 0
    with pytest.raises(NotInRunError, match="passage visualize"):
        run.feature("conv", 0)


def test_drop_features_keeps_other_epochs(tmp_path: Path, capsys) -> None:
    layers = layers_of(np.random.default_rng(7), 4, epochs=2)
    run_path = write_run(tmp_path / "run", layers, batch=4, epochs=[0, 1])
    write_features(run_path, "conv", 0, top=False)
    kept = write_features(run_path, "conv", 1, top=False)
    assert drop_features(run_path, "conv", 0) == 4
    run = open_run(run_path)
    assert run.feature_epochs("conv") == [1]
    assert not (run_path / "features/000-conv/epoch-00000").exists()
    np.testing.assert_array_equal(run.feature("conv", 2)["image"], kept["image"][2])
    assert read_settings(run_path) == {"conv": {"1": SETTINGS}}
    assert verify_lines(run_path, capsys)[0] == 0


def test_malformed_feature_lines_are_skipped_and_reported(batch_run, capsys) -> None:
    run_path, _ = batch_run
    write_features(run_path, "conv", None, top=False)
    good = orjson.loads((run_path / MANIFEST).read_bytes().splitlines()[-1])
    lines = [
        {**good, "layer": "conv"},  # a features/ file under a data layer's key
        {**good, "layer": "features.bogus:conv"},
        {**good, "layer": "features.image:"},
        {**good, "path": "features/../data/x.npy"},
        {**good, "path": "elsewhere/x.npy"},
    ]
    with (run_path / MANIFEST).open("ab") as fh:
        fh.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    run = open_run(run_path)
    total = len((run_path / MANIFEST).read_bytes().splitlines())
    assert run.bad_manifest_lines == list(range(total - 4, total + 1))
    assert len(run.feature_entries) == 4 and run.feature_layers == ["conv"]
    code, out = verify_lines(run_path, capsys)
    assert code == 1 and any(line.startswith("manifest: malformed manifest lines") for line in out)


def test_features_of_a_layer_run_json_lacks_are_a_manifest_problem(batch_run, capsys) -> None:
    run_path, _ = batch_run
    write_features(run_path, "conv", None, top=False)
    line = orjson.loads((run_path / MANIFEST).read_bytes().splitlines()[-1])
    line["layer"] = feature_key("activation", "ghost")
    with (run_path / MANIFEST).open("ab") as fh:
        fh.write(orjson.dumps(line) + b"\n")
    code, out = verify_lines(run_path, capsys)
    assert code == 1
    assert "manifest: manifest lists features of layer 'ghost', which run.json lacks" in out
    assert open_run(run_path).feature_layers == ["conv"]


def test_durable_writer_and_layer_dirs_from_run_json(tmp_path: Path) -> None:
    layers = {"block/conv 1": np.zeros((3, 2, 2, 2), np.float32)}
    run_path = write_run(tmp_path / "run", layers, batch=3)
    arrays = batch_arrays(np.random.default_rng(8), 2, top=False)
    with FeatureWriter(run_path, durable=True) as writer:
        (entry, _) = writer.write("block/conv 1", None, 0, arrays)
    assert entry.path == f"features/{layer_dir(0, 'block/conv 1')}/image-c000000.npy"
    run = open_run(run_path)
    np.testing.assert_array_equal(run.feature("block/conv 1", 1)["image"], arrays["image"][1])
    assert run.feature("block/conv 1", 1)["steps"] is None  # no settings recorded


def test_an_image_file_without_its_activation_is_not_visualized(batch_run) -> None:
    run_path, _ = batch_run
    arrays = batch_arrays(np.random.default_rng(11), 2, top=False)
    with FeatureWriter(run_path) as writer:
        writer.write("conv", None, 0, {"image": arrays["image"]})  # killed before activation
    run = open_run(run_path)
    assert run.feature_layers == [] and run.feature_epochs("conv") == []
    with pytest.raises(NotInRunError, match="passage visualize"):
        run.features_of("conv")
