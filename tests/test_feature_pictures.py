"""The pictures of ``passage visualize``: the pure display rules (scaling, attribution masks,
grids, zooms, overlays) checked against numpy and matplotlib computed directly; sheets and
top-patterns pictures read back from their PNGs (each picture found by its frame, then
compared pixel by pixel with the stored image as displayed), on dicts shaped like
``Run.features_of`` and on real runs written through the store (``FeatureWriter``, real
``analyze`` results)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from analysis_helpers import write_run
from matplotlib.colors import Normalize
from PIL import Image
from scipy import ndimage

from pipeline.analysis.runner import analyze
from pipeline.errors import NotInRunError
from pipeline.rendering.features import (
    attribution_mask,
    display,
    display_image,
    draw_features,
    draw_sheet,
    draw_top,
    figure_sheet,
    figure_top,
    geometry,
    sheet_grid,
    sheets,
)
from pipeline.store import open_run
from pipeline.store.feature_files import FeatureWriter, sheet_path, write_settings
from pipeline.store.naming import epoch_dir

FRAME = sheets.FRAME


# -- helpers ----------------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def framed(pixels: np.ndarray, min_side: int = 8) -> list[tuple[int, int, int, int]]:
    """The pictures of a PNG, found by their 1-pixel frame alone: (y, x, h, w) of the inside
    of every closed ring of ``FRAME`` pixels, in reading order (rows, then columns)."""
    ring = np.all(pixels == FRAME, axis=-1)
    labels, n = ndimage.label(ring)
    found = []
    for i, sl in enumerate(ndimage.find_objects(labels)):
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        if y1 - y0 < min_side or x1 - x0 < min_side:
            continue  # anti-aliased text, not a frame
        box = labels[y0:y1, x0:x1] == i + 1
        edges = box[0].all() and box[-1].all() and box[:, 0].all() and box[:, -1].all()
        if edges and box[1:-1, 1:-1].mean() < 0.5:  # a ring, not a flat block of that grey
            found.append((y0 + 1, x0 + 1, y1 - y0 - 2, x1 - x0 - 2))
    assert n >= len(found)
    rows = sorted({f[0] for f in found})
    return sorted(found, key=lambda f: (rows.index(f[0]), f[1]))


def cell(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y, x, h, w = box
    return pixels[y : y + h, x : x + w]


def blocks(a: np.ndarray, up: int) -> np.ndarray:
    """``a`` with each value an up x up block (how an integer zoom draws it)."""
    return np.kron(a, np.ones((up, up) + (1,) * (a.ndim - 2), a.dtype))


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def features_dict(images: np.ndarray, space: str, low: float, high: float, **extra) -> dict:
    n = images.shape[0]
    rng = np.random.default_rng(1)
    settings = {"steps": 96, "seed": 7, "space": space, "low": low, "high": high,
                "preprocess": None, "samples": 16}  # fmt: skip
    out = dict(settings, settings=settings, epoch=None)
    out.update(
        channels=np.arange(n, dtype=np.int64) * 2 + 1,
        images=images.astype(np.float32),
        activation=rng.normal(size=n).astype(np.float32) * 3,
        dataset_activation=rng.normal(size=n),
    )
    out.update(extra)
    return out


# -- pure rules -------------------------------------------------------------------------------
def test_display_image_scales_pictures_from_the_space_range():
    rng = np.random.default_rng(0)
    img = rng.uniform(-20, 280, size=(5, 4, 3))
    got = display_image(img, "pixels", 0.0, 255.0)
    assert got.shape == (5, 4, 3)
    np.testing.assert_allclose(got, np.clip(img / 255.0, 0, 1))
    assert got.min() == 0.0 and got.max() == 1.0  # values outside the range are clipped
    grey = rng.uniform(-1, 1, size=(6, 3, 1))
    got = display_image(grey, "image", -1.0, 1.0)
    assert got.shape == (6, 3, 3)
    for k in range(3):  # one channel replicated to grey RGB
        np.testing.assert_allclose(got[..., k], (grey[..., 0] + 1) / 2)
    nan = img.copy()
    nan[0, 0, 1] = np.nan
    assert np.isnan(display_image(nan, "image", 0, 255)[0, 0, 1])
    with pytest.raises(ValueError, match=r"\(H, W, 1\) or \(H, W, 3\)"):
        display_image(rng.random((4, 4, 2)), "image", 0, 1)
    with pytest.raises(ValueError, match="expected one of"):
        display_image(img, "rgb", 0, 1)


def test_display_image_of_the_input_space_is_a_plane_of_values():
    rng = np.random.default_rng(1)
    vec = rng.normal(size=7)
    np.testing.assert_array_equal(display_image(vec, "input", 0, 1), vec[None, :])
    mat = rng.normal(size=(50, 50))
    np.testing.assert_array_equal(display_image(mat, "input", -1, 1), mat)
    seq = rng.normal(size=(9, 4, 3))  # rank > 2 (and not a picture: no image space)
    np.testing.assert_allclose(display_image(seq, "input", 0, 1), seq.mean(axis=-1))
    vol = rng.normal(size=(3, 4, 2, 5))
    np.testing.assert_allclose(display_image(vol, "input", 0, 1), vol.mean(axis=(2, 3)))


def test_attribution_mask_is_abs_sum_over_colour_over_its_99th_percentile():
    rng = np.random.default_rng(2)
    att = rng.normal(size=(20, 30, 3))
    total = np.abs(att).sum(axis=-1)
    expected = np.clip(total / np.percentile(total, 99), 0, 1)
    got = attribution_mask(att, "image")
    np.testing.assert_allclose(got, expected)
    assert got.max() == 1.0 and (got == 1.0).sum() == math.ceil(0.01 * 600)  # top 1 % saturate
    # a planted spot is where the mask is brightest
    spot = np.zeros((16, 16, 1))
    spot[11, 4] = -5.0
    spot[10, 4] = 1.0
    mask = attribution_mask(spot, "pixels")
    assert mask.shape == (16, 16) and mask[11, 4] == 1.0 and mask.sum() <= 2.0
    assert not attribution_mask(np.zeros((4, 4, 3)), "image").any()
    seq = rng.normal(size=(8, 5, 2))
    s = np.abs(seq).sum(axis=-1)
    np.testing.assert_allclose(
        attribution_mask(seq, "input"), np.clip(s / np.percentile(s, 99), 0, 1)
    )
    vec = np.zeros(10)
    vec[3] = -2
    np.testing.assert_array_equal(attribution_mask(vec, "input"), (np.arange(10) == 3)[None] * 1.0)
    inf = att.copy()
    inf[0, 0, 0] = np.inf
    assert np.isfinite(attribution_mask(inf, "image")).all()


@pytest.mark.parametrize("n", [1, 2, 7, 8, 16, 63, 64, 100, 256])
@pytest.mark.parametrize("aspect", [0.3, 1.0, 1.5])
def test_sheet_grid_holds_every_cell_without_an_empty_row(n, aspect):
    rows, cols = sheet_grid(n, aspect)
    assert rows * cols >= n and (rows - 1) * cols < n
    if n >= 16:  # near the asked shape
        assert 0.5 * aspect <= cols / rows <= 2.0 * aspect


def test_sheet_grid_edges():
    assert sheet_grid(0) == (0, 0)
    assert sheet_grid(64) == (8, 8) and sheet_grid(256) == (16, 16)
    with pytest.raises(ValueError):
        sheet_grid(-1)


def test_zoom_enlarges_small_and_reduces_large_arrays_by_whole_factors():
    z = display.fit_zoom(28, 28, 112)
    assert (z.step, z.up_y, z.up_x) == (1, 4, 4) and z.size(28, 28) == (112, 112)
    z = display.fit_zoom(224, 224, 112)
    assert z.step == 2 and z.size(224, 224) == (112, 112)
    z = display.fit_zoom(1, 40, 160)  # a vector: its row stretched to stay visible
    assert z.size(1, 40) == (16, 160) and z.up_x == 4
    z = display.fit_zoom(300, 2, 64)
    assert z.step == 5 and z.size(300, 2)[1] >= 12
    a = np.arange(4 * 6 * 3, dtype=np.float64).reshape(4, 6, 3)
    np.testing.assert_allclose(display.block_mean(a, 2), a.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3)))
    edge = display.block_mean(np.arange(5.0)[None, :].repeat(3, 0), 2)
    np.testing.assert_allclose(edge, [[0.5, 2.5, 4.0], [1.0, 3.0, 4.0]][:1] * 2)
    b = np.array([[np.nan, 1.0], [3.0, np.nan]])
    assert display.block_mean(b, 2)[0, 0] == 2.0
    np.testing.assert_array_equal(display.enlarge(np.eye(2), display.Zoom(1, 2, 3)),
                                  np.kron(np.eye(2), np.ones((2, 3))))  # fmt: skip


def test_colours_match_matplotlib_within_one_level():
    rng = np.random.default_rng(3)
    values = rng.uniform(-2, 2, size=(30, 30))
    values[0, 0] = np.nan
    got = display.colormap8(values, -1.5, 1.5, sheets.lut8("viridis")).astype(int)
    want = matplotlib.colormaps["viridis"](Normalize(-1.5, 1.5)(values), bytes=True)[..., :3]
    fin = np.isfinite(values)
    assert np.abs(got[fin] - want[fin].astype(int)).max() <= 1
    assert tuple(got[0, 0]) == display.BAD
    rgb = rng.random((5, 5, 3))
    np.testing.assert_array_equal(display.rgb8(rgb), np.rint(rgb * 255).astype(np.uint8))


def test_overlay_keeps_unmarked_pixels_and_paints_marked_ones_hot():
    rng = np.random.default_rng(4)
    base = rng.random((6, 6, 3))
    mask = np.zeros((6, 6))
    mask[2, 3] = 1.0
    mask[4, 4] = 0.5
    lut = sheets.lut8("hot") / 255.0
    out = display.overlay(base, mask, lut, alpha=0.7)
    keep = mask == 0
    np.testing.assert_array_equal(out[keep], base[keep])
    np.testing.assert_allclose(out[2, 3], 0.3 * base[2, 3] + 0.7 * lut[-1])
    np.testing.assert_allclose(out[4, 4], 0.65 * base[4, 4] + 0.35 * lut[128])


def test_titles_say_what_a_reader_needs():
    assert geometry.cell_title(12, 3.14159, 2.5) == "c12  3.14\ndata 2.5"
    assert geometry.cell_title(3, -1e-5) == "c3  -1e-05"
    assert geometry.pattern_title(-1, 0.0) == "none"
    assert geometry.pattern_title(41, 0.123456) == "#41\n0.123"
    s = {"steps": 512, "seed": 4, "space": "pixels", "low": 0.0, "high": 255.0,
         "preprocess": "keras.applications.vgg16.preprocess_input"}  # fmt: skip
    title = geometry.sheet_title("block1/conv", 3, 300, 256, s, True, None)
    for part in ("block1/conv, epoch 3", "first 256 of 300", "512 steps", "seed 4",
                 "space pixels [0, 255]", "preprocess keras.applications", "data:"):  # fmt: skip
        assert part in title, part
    title = geometry.sheet_title("d", None, 8, 8, {**s, "space": "input"}, False, (-1.0, 2.0))
    assert "8 channels" in title and "from -1 to 2" in title and "data" not in title


# -- drawing: sheets read back ----------------------------------------------------------------
def test_rgb_sheet_cells_are_the_stored_images(tmp_path):
    rng = np.random.default_rng(5)
    images = rng.uniform(-0.2, 1.2, size=(10, 16, 16, 3))  # some values beyond [0, 1]
    feats = features_dict(images, "image", 0.0, 1.0, epoch=None)
    fig = figure_sheet(feats, "conv2d")
    words = texts(fig)
    fig.clear()
    head = words[0]
    assert "conv2d: feature visualizations of 10 channels" in head
    assert "96 steps, seed 7, space image [0, 1]" in head
    for i, ch in enumerate(feats["channels"]):
        want = geometry.cell_title(int(ch), float(feats["activation"][i]),
                                   float(feats["dataset_activation"][i]))  # fmt: skip
        assert want in words
    out = draw_sheet(feats, "conv2d", tmp_path / "sheet.png")
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary left
    pixels = read_png(out)
    boxes = framed(pixels)
    assert len(boxes) == 10
    up = display.fit_zoom(16, 16, geometry.picture_box(10)).up_y
    assert up == 10
    for box, image in zip(boxes, images, strict=True):
        assert box[2:] == (16 * up, 16 * up)
        want = blocks(np.rint(np.clip(image, 0, 1) * 255).astype(np.int16), up)
        assert np.abs(cell(pixels, box) - want).max() <= 1
    # the titles are above the pictures, not over them: ink between rows of cells
    y, x, h, w = boxes[0]
    above = pixels[y - 1 - 2 * geometry.line_px(geometry.TITLE_POINTS) : y - 2, x : x + w]
    assert (above < 128).any()


def test_grey_pixels_sheet_and_epoch_in_title(tmp_path):
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 255, size=(3, 28, 28, 1))
    feats = features_dict(images, "pixels", 0.0, 255.0, dataset_activation=np.full(3, np.nan))
    fig = figure_sheet(feats, "conv", epoch=5)
    words = texts(fig)
    fig.clear()
    assert "conv, epoch 5:" in words[0] and "data" not in "".join(words[1:])
    pixels = read_png(draw_sheet(feats, "conv", tmp_path / "s.png", epoch=5))
    boxes = framed(pixels)
    assert len(boxes) == 3
    for box, image in zip(boxes, images, strict=True):
        got = cell(pixels, box)
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
        want = blocks(np.rint(image[..., 0]).astype(np.int16), box[2] // 28)
        assert np.abs(got[..., 0] - want).max() <= 1


def test_input_space_sheet_uses_one_viridis_scale_with_a_colour_bar(tmp_path):
    rng = np.random.default_rng(7)
    images = rng.uniform(-1, 1, size=(5, 12, 20))
    images[1] *= 0.1  # a faint image stays faint: the scale is the sheet's, not the cell's
    feats = features_dict(images, "input", -1.0, 1.0)
    fig = figure_sheet(feats, "dense")
    words = texts(fig)
    assert len(fig.axes) == 1  # the colour bar
    bar_limits = fig.axes[0].get_xlim()
    fig.clear()
    assert "one scale for the whole sheet from -1 to 1" in words[0]
    assert bar_limits == pytest.approx((-1.0, 1.0))
    pixels = read_png(draw_sheet(feats, "dense", tmp_path / "s.png"))
    boxes = framed(pixels)
    assert len(boxes) == 5
    cmap = matplotlib.colormaps["viridis"]
    for box, image in zip(boxes, images, strict=True):
        up = box[3] // 20
        assert box[2:] == (12 * up, 20 * up)
        want = blocks(cmap(Normalize(-1, 1)(image), bytes=True)[..., :3].astype(np.int16), up)
        assert np.abs(cell(pixels, box) - want).max() <= 1


def test_a_large_image_is_drawn_as_block_means(tmp_path):
    rng = np.random.default_rng(10)
    images = rng.uniform(0, 1, size=(2, 200, 180, 3))
    feats = features_dict(images, "image", 0.0, 1.0)
    pixels = read_png(draw_sheet(feats, "big", tmp_path / "b.png"))
    boxes = framed(pixels)
    assert [b[2:] for b in boxes] == [(100, 90)] * 2  # 2 x 2 blocks: within the 160 px box
    for box, image in zip(boxes, images, strict=True):
        means = image.reshape(100, 2, 90, 2, 3).mean(axis=(1, 3))
        assert np.abs(cell(pixels, box) - np.rint(means * 255)).max() <= 1


def test_a_vector_input_is_drawn_as_a_visible_band(tmp_path):
    values = np.linspace(0, 3, 40)[None].repeat(4, 0) + np.arange(4)[:, None] * 0.1
    feats = features_dict(values, "input", 0.0, 3.0)
    pixels = read_png(draw_sheet(feats, "dense_1", tmp_path / "v.png"))
    boxes = framed(pixels)
    assert len(boxes) == 4 and all(b[2] >= 12 and b[3] == 160 for b in boxes)


def test_sheet_is_capped_at_256_cells_and_says_so(tmp_path, caplog):
    rng = np.random.default_rng(8)
    images = rng.uniform(0, 1, size=(300, 8, 8, 3))
    feats = features_dict(images, "image", 0.0, 1.0)
    fig = figure_sheet(feats, "wide")
    head = texts(fig)[0]
    fig.clear()
    assert "the first 256 of 300 visualized channels (at most 256 per sheet)" in head
    start = time.perf_counter()
    with caplog.at_level(logging.INFO):
        pixels = read_png(draw_sheet(feats, "wide", tmp_path / "w.png"))
    took = time.perf_counter() - start
    assert "first 256 of 300" in caplog.text
    boxes = framed(pixels)
    assert len(boxes) == 256
    h, w = pixels.shape[:2]
    assert max(h, w) < 2600 and 0.5 < w / h < 2.5, (h, w)
    up = boxes[-1][2] // 8
    want = blocks(np.rint(images[255] * 255).astype(np.int16), up)
    assert np.abs(cell(pixels, boxes[-1]) - want).max() <= 1
    assert took < 10, took


# -- real runs: FeatureWriter + analyze -------------------------------------------------------
def visualized_run(
    root: Path,
    n_ch: int,
    shape: tuple[int, ...],
    space: str,
    low: float,
    high: float,
    k: int = 3,
    analyzed: bool = True,
    epoch: int | None = None,
    spot: tuple[int, int] = (5, 9),
) -> dict:
    """A run whose layer 'conv' (40 patterns) was analyzed (real ``analyze``) and visualized
    (synthetic arrays through ``FeatureWriter``): attribution zero except at ``spot``."""
    rng = np.random.default_rng(9)
    out = rng.normal(size=(40, 2, 2, n_ch)).astype(np.float32)
    epochs = None if epoch is None else [epoch]
    layers = {"conv": out if epoch is None else out[None]}
    write_run(root, layers, batch=20, epochs=epochs, info={"inputs": [list(shape)]})
    top = None
    if analyzed:
        analyze(root, top=k, cka=False, pictures=False, quiet=True, workers=0)
        top = open_run(root).analysis("conv", epoch)
    write_settings(root, "conv", epoch, {
        "steps": 32, "seed": 2, "lr": 0.05, "size": None, "space": space, "low": low,
        "high": high, "preprocess": None, "transforms": False, "top": k if analyzed else 0,
        "samples": 4, "noise": 0.15, "channels": list(range(n_ch)), "batch": 8,
        "weights": "w", "version": 1})  # fmt: skip
    images = rng.uniform(low, high, size=(n_ch, *shape)).astype(np.float32)
    inputs = rng.uniform(low, high, size=(n_ch, k, *shape)).astype(np.float32)
    att = np.zeros((n_ch, k, *shape), np.float32)
    att[:, :, spot[0], spot[1]] = 3.0
    with FeatureWriter(root) as w:
        for first in range(0, n_ch, 8):
            sl = slice(first, min(first + 8, n_ch))
            arrays = {"image": images[sl], "activation": np.arange(n_ch, dtype=np.float32)[sl]}
            if top is not None:
                arrays.update(
                    attribution=att[sl],
                    top_input=inputs[sl],
                    top_index=top["top_index"][sl].astype(np.int64),
                    top_value=top["top_value"][sl].astype(np.float32),
                )
            w.write("conv", epoch, first, arrays)
    return {"images": images, "inputs": inputs, "top": top}


def test_draw_features_on_a_real_run_writes_both_pictures(tmp_path):
    root = tmp_path / "run"
    made = visualized_run(root, 20, (10, 14), "input", -2.0, 2.0, k=3)
    run = open_run(root)
    paths = draw_features(run, "conv")
    rec = run.layer("conv")
    assert paths == [sheet_path(root, rec.dir, None), sheet_path(root, rec.dir, None, "top")]
    assert paths[0].name.endswith(".png") and paths[1].name.endswith(".top.png")
    sheet = read_png(paths[0])
    assert len(framed(sheet)) == 20
    analysis_best = made["top"]["top_value"][:, 0]
    fig = figure_sheet(run.features_of("conv"), "conv")
    words = texts(fig)
    fig.clear()
    assert geometry.cell_title(4, 4.0, float(analysis_best[4])) in words
    # the top picture: 16 rows (the cut said), each the visualization then 3 patterns
    fig = figure_top(run, "conv", None)
    words = texts(fig)
    fig.clear()
    assert "the first 16 of 20 channels (at most 16)" in words[0]
    for c in (0, 15):
        for j in range(3):
            i, v = int(made["top"]["top_index"][c, j]), float(made["top"]["top_value"][c, j])
            assert geometry.pattern_title(i, v) in words
    top = read_png(paths[1])
    boxes = framed(top)
    assert len(boxes) == 16 * 4
    up = boxes[0][2] // 10
    scale = (-2.0, 2.0)
    for r in (0, 7, 15):
        vis = boxes[4 * r]
        grey = np.rint(np.clip((made["images"][r] - scale[0]) / 4.0, 0, 1) * 255)
        got = cell(top, vis)
        assert np.abs(got[..., 0] - blocks(grey, up)).max() <= 1
        assert (got[..., 0] == got[..., 2]).all()
        # each pattern: plain grey where the attribution is zero, hot at the spot
        far = np.ones((10, 14), bool)
        far[5, 9] = False
        far_px = blocks(far, up)
        for j in range(3):
            base = np.rint(np.clip((made["inputs"][r, j] + 2.0) / 4.0, 0, 1) * 255)
            pat = cell(top, boxes[4 * r + 1 + j])
            assert np.abs(pat[..., 1][far_px] - blocks(base, up)[far_px]).max() <= 1
            hot = pat[5 * up : 6 * up, 9 * up : 10 * up]
            # 0.3 * base + 0.7 * yellow: red at least 0.7 * 255, blue well below, on any base
            assert (hot[..., 0] >= 178).all() and (hot[..., 0] - hot[..., 2] > 60).all()


def test_rgb_top_picture_and_training_epoch_paths(tmp_path):
    root = tmp_path / "run"
    visualized_run(root, 4, (12, 12, 3), "image", 0.0, 1.0, k=2, epoch=3, spot=(2, 2))
    run = open_run(root)
    paths = draw_features(run, "conv")
    stem = f"000-conv.{epoch_dir(3)}"  # the store's epoch folder name
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.top.png"]
    top = read_png(paths[1])
    assert len(framed(top)) == 4 * 3
    fig = figure_top(run, "conv", 3, channels=[2, 1])
    words = texts(fig)
    fig.clear()
    assert "conv, epoch 3: 2 channels, each with its top 2 patterns" in words[0]
    assert "RGB from 0 to 1" in words[0]
    assert words.index(
        geometry.cell_title(2, 2.0, float(run.analysis("conv", 3)["top_value"][2, 0]))
    ) < words.index(  # noqa: E501
        geometry.cell_title(1, 1.0, float(run.analysis("conv", 3)["top_value"][1, 0]))
    )
    with pytest.raises(NotInRunError, match="not visualized"):
        figure_top(run, "conv", 3, channels=[9])


def test_without_analysis_only_the_sheet_is_drawn(tmp_path, caplog):
    root = tmp_path / "run"
    visualized_run(root, 3, (8, 8, 1), "image", 0.0, 1.0, analyzed=False, spot=(1, 1))
    run = open_run(root)
    with caplog.at_level(logging.INFO):
        paths = draw_features(run, "conv")
    assert [p.name for p in paths] == ["000-conv.png"]
    assert "no top-patterns picture" in caplog.text
    with pytest.raises(NotInRunError, match="passage analyze"):
        draw_top(run, "conv", None, tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()
    with pytest.raises(NotInRunError):
        draw_features(run, "conv", epoch=4)
