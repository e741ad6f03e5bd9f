"""--keep-inputs: the model's inputs stored with the run (not as layers), read back, verified,
resumed, and drawn as each pattern's first cell."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from page_pixels import inside_any, page_geometry, pixel_centres, sampled_levels
from PIL import Image

from pipeline.capturing.patterns import load_patterns
from pipeline.capturing.probe import Probe
from pipeline.capturing.stream import capture_model
from pipeline.cli import build_parser, capture_config, main
from pipeline.config import CaptureConfig, Config, SelectConfig, from_dict
from pipeline.errors import ConfigError, NotInRunError, SpecError, StoreError
from pipeline.rendering import layout, raster, render
from pipeline.rendering.cells import ChunkCache, GridOptions
from pipeline.rendering.input_cells import input_cell, input_scales, rgb_scale
from pipeline.store import RunWriter, open_run
from pipeline.store.verify import check_run, info_table

SIZE = 12
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def rgb_model(keras):
    """A seeded functional model over a (12, 12, 3) picture named 'picture'."""
    init = keras.initializers.GlorotUniform(seed=3)
    x = keras.Input((SIZE, SIZE, 3), name="picture")
    conv = keras.layers.Conv2D(4, 3, name="conv", kernel_initializer=init)(x)
    pool = keras.layers.MaxPooling2D(name="pool")(conv)
    flat = keras.layers.Flatten(name="flat")(pool)
    out = keras.layers.Dense(3, name="out", kernel_initializer=init)(flat)
    return keras.Model(x, out, name="rgb")


@pytest.fixture
def pictures(tmp_path):
    """Five small RGB images: a red square on blue, moved along the diagonal."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(5):
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        img[...] = BLUE
        img[i : i + 5, i : i + 5] = RED
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder


def config(tmp_path, patterns, **capture):
    base = {"out": str(tmp_path / "run"), "patterns": str(patterns), "architecture": False}
    base.update(capture)
    return Config(capture=CaptureConfig(**base), select=SelectConfig(rule="all"))


def fed(patterns, shapes, names=None):
    """The pattern arrays Passage feeds the model (the same loader, read in one batch)."""
    source = load_patterns(str(patterns), shapes, names)
    return source.batch(0, source.count)


@pytest.mark.parametrize("batch_size", [2, 5])
def test_image_patterns_keep_their_inputs_by_default(
    tmp_path, rgb_model, pictures, keras_layer_output, batch_size
):
    run = capture_model(rgb_model, config(tmp_path, pictures, batch_size=batch_size), quiet=True)
    x = fed(pictures, [(SIZE, SIZE, 3)])[0]
    assert run.inputs == ["picture"]
    assert "picture" not in run.layers and "input:picture" not in run.layers
    assert run.layers == ["conv", "pool", "flat", "out"]
    chunks = list(run.iter_input_chunks("picture"))
    assert [first for first, _ in chunks] == list(range(0, 5, batch_size))
    stored = np.concatenate([arr for _, arr in chunks])
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, x)  # exactly what the model was fed
    np.testing.assert_array_equal(run.get_input("picture", 3), x[3])
    assert x[3][3, 3].tolist() == [1.0, 0.0, 0.0] and x[3][0, 0].tolist() == [0.0, 0.0, 1.0]
    for name in run.layers:  # the layers are stored as before
        got = np.concatenate([a for _, a in run.iter_chunks(name)])
        np.testing.assert_allclose(
            got, keras_layer_output(rgb_model, name, x), rtol=1e-5, atol=1e-6
        )
    info = orjson.loads((run.path / "run.json").read_bytes())
    assert info["stored_inputs"] == [
        {"index": 0, "name": "picture", "shape": [SIZE, SIZE, 3], "dtype": "float32", "dir": "000-picture"}
    ]  # fmt: skip
    assert info["inputs"] == [[SIZE, SIZE, 3]]  # the model's input shapes, as always
    entries = run.input_chunks("picture")
    assert [e.path for e in entries] == [
        f"data/inputs/batch/000-picture/{first:010d}.npy" for first in range(0, 5, batch_size)
    ]
    assert {e.layer for e in entries} == {"input:picture"}
    assert check_run(run).ok and check_run(run).checked == len(run.entries)
    assert "input:picture" in info_table(run)


def test_several_inputs_and_other_dtypes_are_stored_as_fed(tmp_path, keras):
    init = keras.initializers.GlorotUniform(seed=1)
    image = keras.Input((4, 4), name="image")
    meta = keras.Input((3,), name="meta", dtype="int32")
    joined = keras.layers.Concatenate(name="joined")(
        [keras.layers.Flatten(name="flat")(image), keras.ops.cast(meta, "float32")]
    )
    model = keras.Model([image, meta], keras.layers.Dense(2, kernel_initializer=init)(joined))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "p.npz", image=rng.normal(size=(7, 4, 4)), meta=rng.integers(0, 9, (7, 3)))
    cfg = config(tmp_path, tmp_path / "p.npz", keep_inputs=True, batch_size=3)
    run = capture_model(model, cfg, quiet=True)
    image_x, meta_x = fed(tmp_path / "p.npz", [(4, 4), (3,)], ["image", "meta"])
    assert run.inputs == ["image", "meta"]
    assert [r.dtype for r in run.input_records] == ["float32", "int32"]
    np.testing.assert_array_equal(
        np.concatenate([a for _, a in run.iter_input_chunks("image")]), image_x.astype(np.float32)
    )
    meta_stored = np.concatenate([a for _, a in run.iter_input_chunks("meta")])
    assert meta_stored.dtype == np.int32
    np.testing.assert_array_equal(meta_stored, meta_x)
    assert [r.dir for r in run.input_records] == ["000-image", "001-meta"]


def test_other_patterns_keep_no_inputs_unless_asked(tmp_path, seed_model):
    run = capture_model(seed_model, config(tmp_path, "random:3"), quiet=True)
    assert run.inputs == [] and run.input_records == []
    info = orjson.loads((run.path / "run.json").read_bytes())
    assert "stored_inputs" not in info
    assert not (run.path / "data" / "inputs").exists()
    with pytest.raises(NotInRunError, match="captured without --keep-inputs"):
        run.get_input("input", 0)
    kept = capture_model(
        seed_model, config(tmp_path / "k", "random:3", keep_inputs=True), quiet=True
    )
    np.testing.assert_array_equal(
        np.stack([kept.get_input("input", i) for i in range(3)]),
        fed("random:3", [(50, 50)])[0],
    )


def test_verify_checks_the_stored_inputs(tmp_path, rgb_model, pictures):
    run = capture_model(rgb_model, config(tmp_path, pictures, batch_size=2), quiet=True)
    first, second = run.input_chunks("picture")[:2]
    data = bytearray((run.path / first.path).read_bytes())
    data[-1] ^= 0xFF
    (run.path / first.path).write_bytes(bytes(data))
    (run.path / second.path).unlink()
    report = check_run(open_run(run.path))
    assert report.missing == [second.path]
    assert [c.split(":")[0] for c in report.corrupt] == [first.path]
    assert main(["verify", str(run.path)]) == 1


def test_a_rerun_resumes_the_inputs_too(tmp_path, rgb_model, pictures):
    cfg = config(tmp_path, pictures, batch_size=2)
    run = capture_model(rgb_model, cfg, quiet=True)
    lost = run.input_chunks("picture")[1]
    stamps = {e.path: (run.path / e.path).stat().st_mtime_ns for e in run.entries}
    (run.path / lost.path).unlink()
    again = capture_model(rgb_model, cfg, quiet=True)
    assert check_run(again).ok and not check_run(again).notes
    now = {e.path: (again.path / e.path).stat().st_mtime_ns for e in again.entries}
    assert {p for p in now if now[p] != stamps[p]} == {lost.path}  # only the lost file
    x = fed(pictures, [(SIZE, SIZE, 3)])[0]
    np.testing.assert_array_equal(again.get_input("picture", lost.first), x[lost.first])
    before = Probe.builds
    capture_model(rgb_model, cfg, quiet=True)
    assert Probe.builds == before  # complete: nothing computed


def test_a_run_begun_without_inputs_resumes_without_them(tmp_path, rgb_model, pictures):
    bare = config(tmp_path, pictures, keep_inputs=False)
    run = capture_model(rgb_model, bare, quiet=True)
    assert run.inputs == []
    again = capture_model(rgb_model, config(tmp_path, pictures), quiet=True)  # unset: auto
    assert again.inputs == [] and len(again.entries) == len(run.entries)
    with pytest.raises(StoreError):  # asked for explicitly: another run
        capture_model(rgb_model, config(tmp_path, pictures, keep_inputs=True), quiet=True)


def test_a_layer_named_like_a_stored_input_is_refused(tmp_path, keras, pictures):
    x = keras.Input((SIZE, SIZE, 3), name="picture")
    y = keras.layers.Conv2D(2, 3, name="input:picture")(x)
    model = keras.Model(x, y)
    with pytest.raises(SpecError, match="no-keep-inputs"):
        capture_model(model, config(tmp_path, pictures), quiet=True)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_run_json_with_clashing_input_names_is_refused(tmp_path, rgb_model, pictures):
    run = capture_model(rgb_model, config(tmp_path, pictures), quiet=True)
    info = orjson.loads((run.path / "run.json").read_bytes())
    info["layers"][0]["name"] = "input:picture"
    (run.path / "run.json").write_bytes(orjson.dumps(info))
    with pytest.raises(StoreError, match="stored_inputs"):
        open_run(run.path)
    info["layers"][0]["name"] = "conv"
    info["stored_inputs"].append(dict(info["stored_inputs"][0], index=1))
    (run.path / "run.json").write_bytes(orjson.dumps(info))
    with pytest.raises(StoreError, match="stored_inputs"):  # two inputs named alike
        open_run(run.path)
    escape = {"index": 0, "name": "picture", "shape": [], "dtype": "uint8", "dir": "../x"}
    with pytest.raises(StoreError, match="inside the run"):
        RunWriter(tmp_path / "w", {"fingerprint": "f", "layers": [], "stored_inputs": [escape]})


def test_the_flag_and_the_config_key(tmp_path):
    parse = build_parser().parse_args
    assert capture_config(parse(["capture"])).capture.keep_inputs is None
    assert capture_config(parse(["capture", "--keep-inputs"])).capture.keep_inputs is True
    assert capture_config(parse(["capture", "--no-keep-inputs"])).capture.keep_inputs is False
    assert from_dict({"capture": {"keep_inputs": False}}).capture.keep_inputs is False
    with pytest.raises(ConfigError, match="keep_inputs: expected true or false"):
        from_dict({"capture": {"keep_inputs": "yes"}})
    train = {"dataset": "builtin:stripes"}
    assert from_dict({"train": train}).capture.keep_inputs is None
    with pytest.raises(ConfigError, match="training runs do not store their inputs"):
        from_dict({"capture": {"keep_inputs": True}, "train": train})


def test_rgb_scale_rules():
    assert rgb_scale((8, 8, 3), "float32", 0.0, 1.0) == 1.0
    assert rgb_scale((8, 8, 3), "float16", 0.2, 0.7) == 1.0
    assert rgb_scale((8, 8, 3), "float32", 0.0, 254.0) == 255.0
    assert rgb_scale((8, 8, 3), "uint8", 0.0, 3.0) == 255.0
    assert rgb_scale((8, 8, 3), "float32", -1.0, 1.0) is None  # normalized: colormap
    assert rgb_scale((8, 8, 3), "float32", 0.0, 300.0) is None
    assert rgb_scale((8, 8, 3), "float32", None, None) is None
    assert rgb_scale((8, 8, 1), "float32", 0.0, 1.0) is None
    assert rgb_scale((8, 8), "uint8", 0.0, 1.0) is None
    assert rgb_scale((2, 8, 8, 3), "uint8", 0.0, 1.0) is None


def colors(path):
    return {tuple(c) for c in np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)}


def test_render_draws_the_input_first(tmp_path, rgb_model, pictures):
    run = capture_model(rgb_model, config(tmp_path, pictures), quiet=True)
    report = render(run, tmp_path / "pics", grid=(1, 1), patterns="0,2", workers=1, quiet=True)
    cells = 1 + len(run.layers)  # the input, then every layer
    assert report.pages == 2 * cells and not report.problems
    files = sorted(p.name for p in (tmp_path / "pics" / "pattern-2").iterdir())
    assert files == [f"{i}.png" for i in range(cells)]
    first = colors(tmp_path / "pics" / "pattern-2" / "0.png")
    assert {RED, BLUE} <= first  # drawn as a picture, in its own colours
    # by the raster painter, as an RGB page (the layers' pages stay palette pages)
    rec = run.input_records[0]
    cell = input_cell(ChunkCache(run), rec, 2, input_scales(run)[rec.name], GridOptions())
    assert cell.rgb and raster.supports([cell])
    picture = run.get_input(rec.name, 2)  # its value line: the stored values' range
    assert cell.caption == layout.value_caption(float(picture.min()), float(picture.max()))
    with Image.open(tmp_path / "pics" / "pattern-2" / "0.png") as png:
        assert png.mode == "RGB"
    with Image.open(tmp_path / "pics" / "pattern-2" / "1.png") as png:
        assert png.mode == "P"
    for page in range(1, cells):  # the layers' pages: colormap colours only
        assert not {RED, BLUE} & colors(tmp_path / "pics" / "pattern-2" / f"{page}.png")
    # The same run without its inputs: the pages it always had.
    bare = capture_model(rgb_model, config(tmp_path / "b", pictures, keep_inputs=False), quiet=True)
    again = render(bare, tmp_path / "bare", grid=(1, 1), patterns="2", workers=1, quiet=True)
    assert again.pages == len(bare.layers)
    assert not {RED, BLUE} <= colors(tmp_path / "bare" / "pattern-2" / "0.png")


def test_render_pages_count_the_input_cells(tmp_path, rgb_model, pictures):
    run = capture_model(rgb_model, config(tmp_path, pictures), quiet=True)
    for grid in ((2, 2), (1, 2), (3, 3)):
        out = tmp_path / f"pics-{grid[0]}x{grid[1]}"
        report = render(run, out, grid=grid, patterns="1", workers=1, quiet=True)
        assert report.pages == math.ceil((1 + len(run.layers)) / (grid[0] * grid[1]))
        assert len(list((out / "pattern-1").iterdir())) == report.pages


def test_a_damaged_input_file_is_a_marked_cell(tmp_path, rgb_model, pictures):
    run = capture_model(rgb_model, config(tmp_path, pictures, batch_size=5), quiet=True)
    (entry,) = run.input_chunks("picture")
    (run.path / entry.path).write_bytes(b"broken")
    report = render(open_run(run.path), tmp_path / "pics", grid=(1, 1), patterns="0", quiet=True)
    assert report.pages == 1 + len(run.layers)
    assert report.problems == [f"pattern 0, input 'picture': truncated file ({entry.path})"]
    assert entry.path in report.damaged
    assert main(["render", str(run.path), "--out", str(tmp_path / "cli"), "-q"]) == 1


def test_normalized_pictures_go_through_the_colormap(tmp_path, rgb_model):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32))
    cfg = config(tmp_path, tmp_path / "x.npy", keep_inputs=True)
    run = capture_model(rgb_model, cfg, quiet=True)
    report = render(run, tmp_path / "pics", grid=(1, 1), patterns="0", workers=1, quiet=True)
    assert report.pages == 1 + len(run.layers) and not report.problems
    rec = run.input_records[0]  # a mosaic of its channels, with its value line like a layer's
    opts = GridOptions(rows=1, cols=1)
    cell = input_cell(ChunkCache(run), rec, 0, input_scales(run)[rec.name], opts)
    stored = run.get_input(rec.name, 0)
    assert not cell.rgb and cell.tiles is not None and cell.tiles.shape == stored.shape
    assert cell.caption == layout.value_caption(float(stored.min()), float(stored.max()))
    # The page, read back: at the centre of each pixel of each channel's tile, a colour of the
    # colormap (viridis, sampled at raster.LEVELS levels) whose level holds the stored value
    # on the input's scale (its smallest to its largest value).
    with Image.open(tmp_path / "pics" / "pattern-0" / "0.png") as png:
        assert png.mode == "P"
        page = np.asarray(png.convert("RGB"))
    geo = page_geometry(opts, [cell], f"pattern 0 (page 1/{report.pages})")
    rows, cols, clear = pixel_centres(geo.images[0], layout.mosaic_shape(stored.shape), geo.height)
    covered = inside_any(rows, cols, geo.labels[0]) | ~clear
    lo, hi = float(stored.min()), float(stored.max())
    step = (hi - lo) / raster.LEVELS
    read = 0
    for k, (y, x) in enumerate(layout.tile_origins(stored.shape)):
        tile = (slice(y, y + SIZE), slice(x, x + SIZE))
        level, dist = sampled_levels(
            page[np.ix_(rows[tile[0]], cols[tile[1]])], "viridis", raster.LEVELS
        )
        shown = ~covered[tile]
        assert shown[SIZE // 2, SIZE // 2] and shown.mean() > 0.8, k  # labels cover a corner
        assert np.all(dist[shown] == 0), f"channel {k}: colours not of the colormap"
        value = stored[..., k][shown].astype(np.float64)
        low, high = lo + level[shown] * step, lo + (level[shown] + 1) * step
        wrong = (value < low - 1e-6) | (value > high + 1e-6)
        assert not wrong.any(), f"channel {k}: {wrong.sum()} pixels read back other values"
        read += shown.sum()
    assert read > 0.8 * stored.size
