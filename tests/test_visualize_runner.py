"""``pipeline.visualize`` (runner, reload) on real captured runs: the article's model
(builtin:seed, "input" space), the nested CNN (builtin:cnn, "image" space from kept inputs), a
Keras Applications MobileNetV2 captured with ``--preprocess`` ("pixels" space), and a model
captured from memory. Every stored visualization, passed through the model by Keras alone,
reaches its stored activation; the attributed top patterns are the analysis' and their stored
activations are Keras'."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

need_keras()

from pipeline import config as cfgmod  # noqa: E402
from pipeline import open_run  # noqa: E402
from pipeline.analysis import analyze  # noqa: E402
from pipeline.capturing.stream import capture, capture_model  # noqa: E402
from pipeline.capturing.visualize.choices import (  # noqa: E402
    channel_batches,
    compact_channels,
    default_top,
    match_layers,
    parse_channels,
    parse_epochs,
    settings_diff,
    spaced,
)
from pipeline.capturing.visualize.reload import pattern_inputs, pattern_range  # noqa: E402
from pipeline.capturing.visualize.runner import visualize  # noqa: E402
from pipeline.errors import ConfigError, SpecError, StoreError  # noqa: E402
from pipeline.store import MANIFEST, read_manifest  # noqa: E402
from pipeline.store.feature_files import layer_settings  # noqa: E402
from pipeline.store.verify import check_run  # noqa: E402

TESTS = Path(__file__).resolve().parent
IMAGES = TESTS / "data" / "images"
# float32: a mean over the layer's outputs, computed in another graph (batch of 1 vs n)
RTOL, ATOL = 1e-4, 1e-5


def channel_means(out: np.ndarray) -> np.ndarray:
    """(n, ..., C) -> (n, C): the mean over every per-pattern axis but the last."""
    return out.reshape(out.shape[0], -1, out.shape[-1]).mean(axis=1)


def sub_model(keras, model, name: str):
    """Keras alone: input -> the output of layer ``name`` (``outer/inner`` inside a nested
    functional model fed the model's input directly)."""
    if "/" in name:
        outer, inner = name.split("/", 1)
        return sub_model(keras, model.get_layer(outer), inner)
    return keras.Model(model.inputs, model.get_layer(name).output)


# -- pure choices --------------------------------------------------------------------------------
def test_channel_specs_batches_and_epochs() -> None:
    assert parse_channels("0-3, 7", 10) == [0, 1, 2, 3, 7]
    assert parse_channels("all", 3) == [0, 1, 2]
    assert parse_channels(None, 100) == list(range(64))
    assert parse_channels(None, 5) == list(range(5))
    assert parse_channels([4, 2, 2], 5) == [2, 4]
    for bad in ("x", "3-1", "0-10", ""):
        if bad:
            with pytest.raises(ConfigError, match="channels"):
                parse_channels(bad, 10)
    assert channel_batches([0, 1, 2, 3, 4, 7, 8], 2) == [[0, 1], [2, 3], [4], [7, 8]]
    assert compact_channels([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert spaced(list(range(10))) == [0, 3, 6, 9]
    assert spaced([0, 1, 2]) == [0, 1, 2]
    assert parse_epochs(None, [0, 1, 2, 3, 4, 5, 6]) == [0, 2, 4, 6]
    assert parse_epochs("last", [0, 5]) == [5] and parse_epochs("all", [0, 5]) == [0, 5]
    with pytest.raises(ConfigError, match=r"kept epochs: 0, 5"):
        parse_epochs("0,3", [0, 5])
    assert default_top(None, None) == 0 and default_top(20, None) == 9
    assert default_top(4, None) == 4 and default_top(9, 0) == 0
    with pytest.raises(ConfigError, match="analyze --top 12"):
        default_top(9, 12)
    assert match_layers(["a/conv1", "a/pool1", "dense"], ["a/*"]) == ["a/conv1", "a/pool1"]
    with pytest.raises(ConfigError, match="matches none"):
        match_layers(["dense"], ["conv*"])
    # other channels join the record: never a difference
    diff = settings_diff({"steps": 16, "channels": list(range(10))}, {"steps": 32, "channels": [0]})
    assert diff == ["steps 16 -> 32"]
    assert settings_diff({"size": [8, 8], "low": 0.5}, {"size": (8, 8), "low": 0.5}) == []


# -- the article's model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> Path:
    """builtin:seed over 6 random patterns, analyzed (top 4)."""
    out = tmp_path_factory.mktemp("seed") / "run"
    cfg = cfgmod.from_dict(
        {
            "capture": {"model": "builtin:seed", "patterns": "random:6:3", "out": str(out)},
            "select": {"rule": "seed"},
        }
    )
    capture(cfg, quiet=True)
    analyze(out, top=4, cka=False, pictures=False, quiet=True)
    return out


def test_seed_run_visualized_files_verify_and_match_keras(seed_run, tmp_path, keras) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(seed_run, run_dir)
    report = visualize(
        run_dir,
        layers=["my_dense"],
        channels="0-4,9",
        steps=16,
        batch=4,
        top=3,
        samples=4,
        pictures=False,
        quiet=True,
    )
    assert report.layers == ["my_dense"] and report.channels == 6 and report.computed == 6
    assert report.attributed and np.isfinite(report.activation)
    run = open_run(run_dir)
    assert check_run(run).ok
    kinds = {e.layer.split(":")[0] for e in run.feature_entries}
    assert kinds == {
        f"features.{k}"
        for k in ("image", "activation", "attribution", "top_input", "top_index", "top_value")
    }
    firsts = sorted({e.first for e in run.feature_entries})
    assert firsts == [0, 4, 9]  # batches of consecutive channels: 0-3, 4, 9
    from pipeline.capturing.builtin_models import seed_model

    model = seed_model()
    sub = sub_model(keras, model, "my_dense")
    analysis = run.analysis("my_dense")
    low, high = pattern_range(run)
    for c in (0, 1, 4, 9):
        f = run.feature("my_dense", c)
        assert f["image"].shape == (50, 50) and f["steps"] == 16 and f["space"] == "input"
        assert low <= f["image"].min() and f["image"].max() <= high
        keras_act = channel_means(np.asarray(sub([f["image"][None]])))[0, c]
        np.testing.assert_allclose(f["activation"], keras_act, rtol=RTOL, atol=ATOL)
        assert f["dataset_activation"] == pytest.approx(float(analysis["top_value"][c, 0]))
        top = run.top_patterns("my_dense", c)
        np.testing.assert_array_equal(top["index"], analysis["top_index"][c, :3])
        np.testing.assert_array_equal(top["input"], pattern_inputs(run, top["index"]))
        keras_top = channel_means(np.asarray(sub([top["input"]])))[:, c]
        np.testing.assert_allclose(top["value"], keras_top, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(top["value"], analysis["top_value"][c, :3], rtol=RTOL, atol=ATOL)
        assert top["attribution"].shape == (3, 50, 50) and np.abs(top["attribution"]).max() > 0
    # random:6:3 rebuilt: PCG64 patterns in [0, 1)
    assert 0.0 <= low < 0.01 and 0.99 < high < 1.0

    # the same call again: every batch found done, no file rewritten
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "features").rglob("*.npy")}
    again = visualize(
        run_dir,
        layers=["my_dense"],
        channels="0-4,9",
        steps=16,
        batch=4,
        top=3,
        samples=4,
        pictures=False,
        quiet=True,
    )
    assert again.computed == 0 and again.reused == 6
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "features").rglob("*.npy")} == before

    # more channels with the same settings: added beside the others, which stay as they are
    more = visualize(
        run_dir,
        layers=["my_dense"],
        channels="3-7",
        steps=16,
        batch=4,
        top=3,
        samples=4,
        pictures=False,
        quiet=True,
    )
    assert more.channels == 5 and more.computed == 3 and more.reused == 2  # 5-7 are new
    after = {p: p.stat().st_mtime_ns for p in (run_dir / "features").rglob("*.npy")}
    assert {p: after[p] for p in before} == before
    run = open_run(run_dir)
    assert check_run(run).ok
    assert run.features_of("my_dense")["channels"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert sorted({e.first for e in run.feature_entries}) == [0, 4, 5, 9]
    assert layer_settings(run_dir, "my_dense", None)["channels"] == [0, 1, 2, 3, 4, 5, 6, 7, 9]

    # other settings: refused, naming them and --overwrite; nothing changed
    with pytest.raises(StoreError, match=r"steps 16 -> 17.*--overwrite") as err:
        visualize(
            run_dir,
            layers=["my_dense"],
            channels="0-4,9",
            steps=17,
            batch=4,
            top=3,
            samples=4,
            pictures=False,
            quiet=True,
        )
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^channels: the layer has 50 channel"):
        visualize(run_dir, layers=["my_dense"], channels="0-50", quiet=True)
    # --overwrite: dropped and redone, still valid
    redone = visualize(
        run_dir,
        layers=["my_dense"],
        channels="2-3",
        steps=8,
        top=0,
        pictures=False,
        quiet=True,
        overwrite=True,
    )
    assert redone.computed == 2 and not redone.attributed
    run = open_run(run_dir)
    assert check_run(run).ok
    assert sorted({e.first for e in run.feature_entries}) == [2]
    assert run.features_of("my_dense")["channels"].tolist() == [2, 3]


def test_pictures_and_the_default_channels(seed_run, tmp_path, caplog) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(seed_run, run_dir)
    with caplog.at_level("INFO", logger="pipeline"):
        report = visualize(run_dir, layers=["dense"], steps=4, top=0, quiet=True)
    # dense has 75 channels: the first 64, said in one line
    assert report.channels == 64
    assert any("the first 64 of its 75 channels" in r.getMessage() for r in caplog.records)
    assert open_run(run_dir).features_of("dense")["channels"].tolist() == list(range(64))
    assert report.pictures and all(p.is_file() and p.suffix == ".png" for p in report.pictures)
    assert (run_dir / "features" / "001-dense.png") in report.pictures


def test_without_an_analysis_attribution_is_skipped_with_one_warning(tmp_path, caplog) -> None:
    out = tmp_path / "run"
    cfg = cfgmod.from_dict(
        {
            "capture": {"model": "builtin:seed", "patterns": "random:2", "out": str(out)},
            "select": {"rule": "seed"},
        }
    )
    capture(cfg, quiet=True)
    with caplog.at_level("WARNING", logger="pipeline"):
        report = visualize(out, channels="0-1", steps=4, pictures=False, quiet=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"run `passage analyze {out}` first" in warnings[0]
    assert not report.attributed and report.computed == 6
    assert open_run(out).features_of("dense")["top"] == 0
    # analyzed afterwards: the same call adds the attributions, the images stay as they are
    images = {p: p.stat().st_mtime_ns for p in (out / "features").rglob("image-*.npy")}
    analyze(out, top=2, cka=False, pictures=False, quiet=True)
    added = visualize(out, channels="0-1", steps=4, pictures=False, quiet=True)
    assert added.attributed and added.computed == 6
    assert {p: p.stat().st_mtime_ns for p in images} == images
    run = open_run(out)
    assert check_run(run).ok and run.features_of("dense")["top"] == 2
    assert (
        run.top_patterns("dense", 1)["index"].tolist()
        == run.analysis("dense")["top_index"][1].tolist()
    )


# -- in-memory models, digests, several inputs ----------------------------------------------------
def test_in_memory_runs_need_the_model_and_its_weights(tmp_path, keras) -> None:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    x_data = np.random.default_rng(0).uniform(0, 1, (5, 6, 6, 1)).astype(np.float32)
    out = tmp_path / "run"
    cfg = cfgmod.from_dict({"capture": {"out": str(out)}, "select": {"rule": "all"}})
    capture_model(model, cfg, x_data, quiet=True)
    with pytest.raises(SpecError, match=r"call pipeline\.visualize\(run, model=the_model\)"):
        visualize(out, steps=4, quiet=True)
    # the in-memory patterns were not kept: needed (checked), or refused in one line
    with pytest.raises(SpecError, match=r"patterns=the_arrays.*--keep-inputs"):
        visualize(out, model=model, steps=4, quiet=True)
    with pytest.raises(SpecError, match="not those run"):
        visualize(out, model=model, patterns=x_data[::-1], steps=4, quiet=True)
    report = visualize(
        out,
        model=model,
        patterns=x_data,
        layers=["conv"],
        steps=4,
        top=0,
        pictures=False,
        quiet=True,
    )
    assert report.channels == 3
    f = open_run(out).feature("conv", 0)
    assert (f["low"], f["high"]) == (float(x_data.min()), float(x_data.max()))
    other = keras.models.clone_model(model)
    other.set_weights([w + 1.0 for w in model.get_weights()])
    with pytest.raises(SpecError, match=r"differ from those run .* was captured with"):
        visualize(out, model=other, steps=4, quiet=True)


def test_in_memory_run_with_kept_inputs(tmp_path, keras) -> None:
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    x_data = np.random.default_rng(0).uniform(0.25, 0.75, (5, 6, 6, 1)).astype(np.float32)
    out = tmp_path / "run"
    cfg = cfgmod.from_dict(
        {"capture": {"out": str(out), "keep_inputs": True}, "select": {"rule": "all"}}
    )
    capture_model(model, cfg, x_data, quiet=True)
    analyze(out, top=6, cka=False, pictures=False, quiet=True)  # 5 patterns: one empty slot
    # asked for 6 of 5 patterns: the slot left empty is stored as such
    report = visualize(
        out, model=model, layers=["conv"], steps=8, samples=2, top=6, pictures=False, quiet=True
    )
    assert report.channels == 3 and report.attributed
    run = open_run(out)
    f = run.feature("conv", 2)
    assert f["space"] == "image" and (f["low"], f["high"]) == pytest.approx(
        (float(x_data.min()), float(x_data.max()))
    )
    sub = keras.Model(model.inputs, model.get_layer("conv").output)
    np.testing.assert_allclose(
        f["activation"],
        channel_means(np.asarray(sub([f["image"][None]])))[0, 2],
        rtol=RTOL,
        atol=ATOL,
    )
    top = run.top_patterns("conv", 2)
    assert top["index"].shape == (6,) and sorted(top["index"][:5]) == list(range(5))
    np.testing.assert_array_equal(top["input"][:5], x_data[top["index"][:5]])
    # the empty slot: index -1, value NaN, zero input and map
    assert top["index"][5] == -1 and np.isnan(top["value"][5])
    assert not top["input"][5].any() and not top["attribution"][5].any()
    np.testing.assert_allclose(
        top["value"][:5],
        channel_means(np.asarray(sub([top["input"][:5]])))[:, 2],
        rtol=RTOL,
        atol=ATOL,
    )
    # not asked: analyze's K, but never more slots than the run has patterns
    visualize(
        out,
        model=model,
        layers=["conv"],
        steps=8,
        samples=2,
        pictures=False,
        quiet=True,
        overwrite=True,
    )
    again = open_run(out)
    assert again.features_of("conv")["top"] == 5
    assert sorted(again.top_patterns("conv", 2)["index"]) == list(range(5))


def test_multi_input_models_are_refused(tmp_path, keras) -> None:
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    out_t = keras.layers.Dense(3, name="d")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out_t)
    out = tmp_path / "run"
    cfg = cfgmod.from_dict({"capture": {"out": str(out)}, "select": {"rule": "all"}})
    rng = np.random.default_rng(0)
    capture_model(model, cfg, [rng.random((3, 4)), rng.random((3, 4))], quiet=True)
    with pytest.raises(SpecError, match="multi-input models are not supported"):
        visualize(out, model=model, quiet=True)
    assert not (out / "features").exists()


# -- the nested CNN over an image folder (kept inputs) -------------------------------------------
def test_cnn_run_image_space_from_kept_inputs(tmp_path, keras) -> None:
    out = tmp_path / "cnn"
    cfg = cfgmod.from_dict(
        {
            "capture": {"model": "builtin:cnn", "patterns": str(IMAGES), "out": str(out)},
            "select": {"rule": "all"},
        }
    )
    capture(cfg, quiet=True)
    analyze(out, top=3, cka=False, pictures=False, quiet=True)
    report = visualize(
        out, layers=["backbone/conv1", "dense"], channels="0-2", steps=12, samples=2, quiet=True
    )
    assert report.layers == ["backbone/conv1", "dense"] and report.channels == 6
    run = open_run(out)
    assert run.feature_layers == ["backbone/conv1", "dense"]
    assert check_run(run).ok
    from pipeline.capturing.builtin_models import cnn_model

    model = cnn_model()
    for layer in ("backbone/conv1", "dense"):
        sub = sub_model(keras, model, layer)
        got = run.features_of(layer)
        assert got["images"].shape == (3, 28, 28, 1) and got["space"] == "image"
        keras_act = channel_means(np.asarray(sub([got["images"]])))
        np.testing.assert_allclose(
            got["activation"], keras_act[np.arange(3), np.arange(3)], rtol=RTOL, atol=ATOL
        )
        top = run.top_patterns(layer, 1)
        kept = np.stack([run.get_input("image", int(i)) for i in top["index"]])
        np.testing.assert_array_equal(top["input"], kept)
    # the kept inputs' range, from the manifest
    entries = run.input_chunks("image")
    assert pattern_range(run) == (min(e.min for e in entries), max(e.max for e in entries))
    # a layer glob matching nothing is refused before anything is written
    with pytest.raises(ConfigError, match="matches none"):
        visualize(out, layers=["nope*"], quiet=True)


def test_manifest_lines_keep_data_entries_first(seed_run) -> None:
    """The capture's data lines are untouched by a visualize (appended after them)."""
    lines = read_manifest(seed_run / MANIFEST).entries
    assert all(e.path.startswith("data/") for e in lines)


# -- a Keras Application captured with --preprocess: the "pixels" space ------------------------
FACTORY = f"""import sys

sys.path.insert(0, {str(TESTS)!r})
from helpers_apps import build


def mobilenetv2():
    return build("MobileNetV2")
"""


def test_mobilenetv2_with_preprocess_is_visualized_in_pixels(tmp_path, keras) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "factory.py").write_text(FACTORY, encoding="utf-8")
    out = tmp_path / "run"
    cfg = cfgmod.from_dict(
        {
            "capture": {
                "model": f"{tmp_path / 'factory.py'}:mobilenetv2",
                "patterns": str(folder),
                "preprocess": "mobilenet_v2",
                "keep_inputs": False,  # the patterns are read again from the folder
                "out": str(out),
            },
            "select": {"rule": "all", "include": ["Conv1", "Conv1_relu"]},
        }
    )
    capture(cfg, quiet=True)
    analyze(out, top=2, cka=False, pictures=False, quiet=True)
    report = visualize(
        out, layers=["Conv1_relu"], channels="0-3", steps=8, samples=2, pictures=False, quiet=True
    )
    assert report.channels == 4 and report.attributed
    run = open_run(out)
    from helpers_apps import build

    model = build("MobileNetV2")
    sub = keras.Model(model.inputs, model.get_layer("Conv1_relu").output)
    prep = keras.applications.mobilenet_v2.preprocess_input
    got = run.features_of("Conv1_relu")
    assert got["space"] == "pixels" and (got["low"], got["high"]) == (0.0, 255.0)
    assert got["preprocess"] == "mobilenet_v2"
    images = got["images"]
    assert images.shape == (4, 32, 32, 3) and 0.0 <= images.min() and images.max() <= 255.0
    keras_act = channel_means(np.asarray(sub([prep(images.copy())])))
    np.testing.assert_allclose(
        got["activation"], keras_act[np.arange(4), np.arange(4)], rtol=RTOL, atol=ATOL
    )
    # top patterns: the folder's images read again, as pixels 0..255 (resized like the capture)
    from pipeline.capturing.patterns import load_patterns

    source = load_patterns(str(folder), [(32, 32, 3)])
    pixels = source.batch(0, 3)[0] * np.float32(255.0)
    top = run.top_patterns("Conv1_relu", 3)
    np.testing.assert_array_equal(top["input"], pixels[top["index"]])
    keras_top = channel_means(np.asarray(sub([prep(top["input"].copy())])))[:, 3]
    np.testing.assert_allclose(top["value"], keras_top, rtol=RTOL, atol=1e-4)
