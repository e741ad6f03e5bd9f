"""The Unit view's API (``/api/run/R/features``, ``unit``, ``unit-epochs``,
``features-grid``) on a real server over real runs: a Keras capture of a tiny RGB CNN and of
``builtin:seed``, a training run, each analyzed, with features written by ``FeatureWriter``
(``viewer_unit_helpers``). What the API answers is compared with ``Run.feature``,
``Run.top_patterns``, ``Run.analysis`` and numpy on the stored activations; the static report
holds the same payloads, up to its size budget."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from test_viewer_compare import Server
from test_viewer_report import read_put, read_static
from viewer_unit_helpers import CNN_LAYER, TRAIN_VISUALIZED, cnn_run, rgb_run, seed_run, train_run

from pipeline.rendering.features.display import attribution_mask
from pipeline.store import open_run
from pipeline.viewer import Api
from pipeline.viewer.static_report import MB, build_report
from pipeline.viewer.unit_display import thumbnail_codes


@pytest.fixture(scope="module")
def runs(tmp_path_factory, keras) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("units")
    return {
        "rgb": rgb_run(keras, root / "rgb"),
        "seed": seed_run(root / "seed"),
        "train": train_run(root / "train"),
        "cnn": cnn_run(root / "cnn"),
    }


@pytest.fixture
def server(runs) -> Iterator[Server]:
    s = Server([runs["rgb"], runs["seed"], runs["train"], runs["cnn"]])
    yield s
    s.stop()


RUN_IDS = {"rgb": 0, "seed": 1, "train": 2, "cnn": 3}


def floats(payload: dict) -> np.ndarray:
    raw = base64.b64decode(payload["b64"])
    return np.frombuffer(raw, dtype="<f4").reshape(payload["shape"])


def codes(b64: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(shape)


def scaled(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The page's byte rule, written out: Math.round((v - lo) / (hi - lo) * 255), clipped."""
    return np.clip(np.floor((x.astype(np.float64) - lo) / (hi - lo) * 255 + 0.5), 0, 255)


def expected_codes(image: np.ndarray, space: str, low: float, high: float) -> np.ndarray:
    if space in ("image", "pixels"):
        out = scaled(image, low, high)
        return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out
    plane = image.astype(np.float64)
    return scaled(plane, plane.min(), plane.max())


def activations(run, layer: str, epoch: int | None) -> np.ndarray:
    """(N, C) channel activations from the stored outputs, pattern by pattern (float64)."""
    c = run.layer(layer).shape[-1]
    return np.stack(
        [
            run.get(layer, p, epoch).astype(np.float64).reshape(-1, c).mean(axis=0)
            for p in range(run.num_patterns)
        ]
    )


def as_json(value):
    v = float(value)
    return None if np.isnan(v) else v


# -- the features list ---------------------------------------------------------------------------
def test_features_list_names_what_the_run_holds(server, runs):
    tops = {"rgb": {"conv": [0, 1, 2, 3], "dense": []}, "seed": {"my_dense": [0, 1, 2, 3]}}
    tops["train"] = {"conv": [0, 1, 2, 3]}
    tops["cnn"] = {CNN_LAYER: list(range(8))}
    for key, run_id in RUN_IDS.items():
        run = open_run(runs[key])
        got = server.json(f"/api/run/{run_id}/features")
        assert [entry["name"] for entry in got["layers"]] == run.feature_layers
        assert got["input_shape"] == list(run.info["inputs"][0])
        assert got["training"] is run.is_training
        assert len(got["overlay"]["lut"]) == 256 and got["overlay"]["alpha"] == 0.7
        for entry in got["layers"]:
            name = entry["name"]
            assert entry["dir"] == run.layer(name).dir
            assert [v["epoch"] for v in entry["visualized"]] == run.feature_epochs(name)
            for v in entry["visualized"]:
                assert v["channels"] == run.feature_channels(name, v["epoch"]).tolist()
                assert v["attribution"] == tops[key][name]
                assert v["settings"] == run.features_of(name, v["epoch"])["settings"]
    train = server.json("/api/run/2/features")["layers"][0]
    assert [v["epoch"] for v in train["visualized"]] == TRAIN_VISUALIZED
    assert server.json("/api/runs")["runs"][0]["features"] == ["conv", "dense"]


# -- one unit ------------------------------------------------------------------------------------
UNITS = [
    ("rgb", "conv", 1, None),  # top patterns with one empty slot
    ("rgb", "conv", 5, None),  # visualized without top patterns
    ("rgb", "dense", 2, None),  # a 1-D output (a Dense unit)
    ("seed", "my_dense", 3, None),  # the input space (50, 50)
    ("train", "conv", 0, 0),
    ("train", "conv", 2, None),  # the last visualized epoch (4)
    ("cnn", CNN_LAYER, 3, None),  # written by pipeline.visualize itself
]


@pytest.mark.parametrize("key, layer, channel, epoch", UNITS)
def test_unit_equals_the_run(server, runs, key, layer, channel, epoch):
    run = open_run(runs[key])
    at = "" if epoch is None else f"&epoch={epoch}"
    name = quote(layer, safe="")
    got = server.json(f"/api/run/{RUN_IDS[key]}/unit?layer={name}&channel={channel}{at}")
    f = run.feature(layer, channel, epoch)
    assert got["epoch"] == f["epoch"] == (run.feature_epochs(layer)[-1] if epoch is None else epoch)
    image = floats(got["image"])
    assert image.dtype == np.float32 and np.array_equal(image, f["image"])
    assert got["activation"] == float(f["activation"])
    a = run.analysis(layer, f["epoch"])
    assert got["dataset_activation"] == float(a["top_value"][channel, 0])
    assert got["dataset_activation"] == as_json(f["dataset_activation"])
    for name in ("steps", "seed", "space", "low", "high", "preprocess"):
        assert got[name] == f[name], name

    # the top patterns: as Run.top_patterns, empty slots left out
    if (channel < 4 and layer != "dense") or key == "cnn":
        top = run.top_patterns(layer, channel, f["epoch"])
        keep = top["index"] >= 0
        assert got["top"]["index"] == top["index"][keep].tolist()
        assert got["top"]["value"] == [float(v) for v in top["value"][keep]]
        assert len(got["top"]["inputs"]) == len(got["top"]["masks"]) == int(keep.sum())
        assert (key, channel) != ("rgb", 1) or int(keep.sum()) == 3
        for k, i in enumerate(np.flatnonzero(keep)):
            inp = got["top"]["inputs"][k]
            want = expected_codes(top["input"][i], f["space"], f["low"], f["high"])
            assert np.array_equal(codes(inp["codes"], inp["shape"]), want)
            mask = got["top"]["masks"][k]
            want_mask = attribution_mask(top["attribution"][i], f["space"])
            assert np.array_equal(codes(mask["codes"], mask["shape"]), scaled(want_mask, 0, 1))
            # where the overlay is brightest, |attribution| (summed over colour) is largest
            total = np.abs(top["attribution"][i]).reshape(*want_mask.shape, -1).sum(axis=-1)
            assert want_mask.flat[np.argmax(total)] == 1.0
    else:
        assert got["top"] is None

    # analyze's statistics of this channel, and its class means where labels exist
    stats = got["analysis"]
    for name in ("channel_mean", "channel_std", "channel_frac_positive"):
        assert stats[name] == float(a[name][channel]), name
    assert stats["dead"] == bool(a["dead"][channel])
    assert stats["top_index"] == a["top_index"][channel].tolist()
    if key in ("seed", "cnn"):
        assert "classes" not in stats
    else:
        assert stats["classes"] == a["classes"].tolist()
        assert stats["class_channel_mean"] == a["class_channel_mean"][:, channel].tolist()
        names = ["cat", "dog"] if key == "train" else ["0", "1", "2"]
        assert stats["class_names"] == names

    # the histogram: numpy's on the activations of every pattern, from the stored outputs
    acts = activations(run, layer, f["epoch"])[:, channel]
    counts, edges = np.histogram(acts, bins=30)
    hist = got["histogram"]
    assert hist["counts"] == counts.tolist() and hist["patterns"] == run.num_patterns
    np.testing.assert_allclose(hist["edges"], edges, rtol=1e-12, atol=1e-15)
    # its top end is analyze's best activation (float32 sums there: relative 1e-5)
    assert hist["edges"][-1] == pytest.approx(float(a["top_value"][channel, 0]), rel=1e-5)


def test_histograms_are_kept_per_unit(runs):
    api = Api([runs["rgb"]])
    state = api.runs.state(0)
    first = api.units.histograms.of(state, "conv", None, 2)
    assert api.units.histograms.of(state, "conv", None, 2) is first
    # the layer's activations were computed once for all its channels
    assert len(api.units.histograms._acts) == 1
    other = api.units.histograms.of(state, "conv", None, 3)
    assert other is not first and len(api.units.histograms._acts) == 1
    api.runs.close()


def test_unit_epochs_of_a_training_run(server, runs):
    run = open_run(runs["train"])
    for channel in (2, 4):
        got = server.json(f"/api/run/2/unit-epochs?layer=conv&channel={channel}")
        assert [r["epoch"] for r in got["epochs"]] == TRAIN_VISUALIZED
        for row in got["epochs"]:
            f = run.feature("conv", channel, row["epoch"])
            assert np.array_equal(floats(row["image"]), f["image"])
            assert row["activation"] == float(f["activation"])
            if channel < 4:
                index = run.top_patterns("conv", channel, row["epoch"])["index"]
                assert row["top_index"] == index[index >= 0].tolist()
            else:
                assert row["top_index"] is None
    batch = server.json("/api/run/0/unit-epochs?layer=conv&channel=1")
    assert [r["epoch"] for r in batch["epochs"]] == [None]


@pytest.mark.parametrize(
    "key, layer, epoch", [("rgb", "conv", None), ("train", "conv", 0), ("cnn", CNN_LAYER, None)]
)
def test_layer_grid(server, runs, key, layer, epoch):
    run = open_run(runs[key])
    at = "" if epoch is None else f"&epoch={epoch}"
    name = quote(layer, safe="")
    got = server.json(f"/api/run/{RUN_IDS[key]}/features-grid?layer={name}{at}")
    f = run.features_of(layer, epoch)
    assert got["channels"] == f["channels"].tolist()
    assert got["activation"] == [float(v) for v in f["activation"]]
    assert got["rgb"] is True
    thumbs = codes(got["thumbs"], [len(f["channels"]), *got["thumb_shape"]])
    for i, image in enumerate(f["images"]):  # small images: the thumbnail is the full image
        assert np.array_equal(thumbs[i], expected_codes(image, f["space"], f["low"], f["high"]))


def test_thumbnails_of_large_images_are_block_means():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 2, (200, 150, 3))
    got = thumbnail_codes(image, "image", -1.0, 2.0, 96)  # 3 x 3 blocks, the last ones smaller
    assert got.shape == (67, 50, 3)
    for y, x in [(0, 0), (10, 20), (66, 49), (66, 0)]:
        block = image[3 * y : 3 * y + 3, 3 * x : 3 * x + 3]
        want = scaled(block.reshape(-1, 3).mean(axis=0), -1.0, 2.0)
        assert np.array_equal(got[y, x], want)
    plane = thumbnail_codes(image[..., 0], "input", 0.0, 1.0, 96)  # over its own range
    lo, hi = image[..., 0].min(), image[..., 0].max()
    assert plane.shape == (67, 50)
    assert plane[5, 7] == scaled(image[15:18, 21:24, 0].mean(), lo, hi)


@pytest.mark.parametrize(
    "target, status, words",
    [
        ("/api/run/0/unit?layer=gap&channel=0", 404, "its visualized layers: conv, dense"),
        ("/api/run/0/unit?layer=nope&channel=0", 404, "has no feature visualization"),
        ("/api/run/0/unit?layer=conv&channel=9", 404, "visualized channels: 0-5"),
        ("/api/run/0/unit?layer=conv&channel=-1", 404, "channel -1"),
        ("/api/run/0/unit?layer=conv&channel=x", 400, "must be an integer"),
        ("/api/run/0/unit?layer=conv", 400, "missing query parameter 'channel'"),
        ("/api/run/0/unit?channel=1", 400, "missing query parameter 'layer'"),
        ("/api/run/0/unit?layer=conv&channel=1&epoch=2", 400, "batch run"),
        ("/api/run/0/unit?layer=conv&layer=dense&channel=1", 400, "given 2 times"),
        (
            "/api/run/2/unit?layer=conv&channel=1&epoch=2",
            404,
            "visualizations of layer 'conv'; its epochs: 0, 4",
        ),
        ("/api/run/2/unit-epochs?layer=conv&channel=7", 404, "visualized channels: 0-4"),
        (
            "/api/run/2/features-grid?layer=conv&epoch=3",
            404,
            "visualizations of layer 'conv'; its epochs: 0, 4",
        ),
        ("/api/run/2/features-grid", 400, "missing query parameter 'layer'"),
        ("/api/run/1/features-grid?layer=..%2f..", 404, "has no feature visualization"),
        ("/api/run/5/features", 404, "run 5 is not served"),
        ("/api/run/0/features/x", 404, "no such page"),
    ],
)
def test_bad_requests_get_a_one_line_json_error(server, target, status, words):
    message = server.json(target, status)["error"]
    assert words in message, message
    assert "\n" not in message and "Traceback" not in message


def test_a_damaged_feature_file_answers_422(tmp_path, runs):
    copy = tmp_path / "run"
    shutil.copytree(runs["rgb"], copy)
    image = next((copy / "features").rglob("image-c000000.npy"))
    data = bytearray(image.read_bytes())
    data[-5] ^= 0xFF
    image.write_bytes(bytes(data))
    s = Server([copy])
    try:
        body = s.json("/api/run/0/unit?layer=conv&channel=1", 422)
        assert "Traceback" not in body["error"] and "\n" not in body["error"]
        assert s.json("/api/run/0/unit?layer=conv&channel=5")["channel"] == 5  # another file
    finally:
        s.stop()


# -- the static report ---------------------------------------------------------------------------
def report_payload(out: Path, key: str):
    got_key, payload = read_put(out / "data" / f"{key}.js")
    assert got_key == key
    return payload


def test_report_holds_the_unit_pages(tmp_path, runs):
    paths = [runs["rgb"], runs["seed"], runs["train"]]
    out = tmp_path / "report"
    summary = build_report(paths, out, patterns="0-2", quiet=True)
    assert summary.units.included == summary.units.total == 6 + 4 + 6 + 10
    api = Api(paths)
    try:
        for key, target in [
            ("r0/units/001-conv/b/c1", "/api/run/0/unit?layer=conv&channel=1"),
            ("r1/units/002-my_dense/b/c3", "/api/run/1/unit?layer=my_dense&channel=3"),
            ("r2/units/000-conv/e0/c2", "/api/run/2/unit?layer=conv&channel=2&epoch=0"),
            ("r2/units/000-conv/c2/epochs", "/api/run/2/unit-epochs?layer=conv&channel=2"),
            ("r0/units/003-dense/b/grid", "/api/run/0/features-grid?layer=dense"),
        ]:
            assert report_payload(out, key) == json.loads(api.handle("GET", target).body), key
        listing = report_payload(out, "r2/features")
        want = json.loads(api.handle("GET", "/api/run/2/features").body)
        for entry in want["layers"][0]["visualized"]:
            entry.update(in_report=entry["channels"], grid_in_report=True)
        assert listing == want
    finally:
        api.runs.close()
    static = read_static(out)
    assert static["units"] == {"included": 26, "total": 26}
    assert "unit pages: 26 of 26" in (out / "index.html").read_text()

    # a smaller budget: the unit pages that fit, and the size line says so
    small = tmp_path / "small"
    budget = (summary.bytes - 60_000) / MB
    part = build_report(paths, small, patterns="0-2", max_mb=budget, quiet=True)
    assert 0 < part.units.included < part.units.total == 26
    assert part.bytes <= budget * MB
    html = (small / "index.html").read_text()
    assert f"unit pages: {part.units.included} of 26 (the rest above --max-mb" in html
    held = 0
    for run_id, (_, layers) in enumerate(
        [(0, ["001-conv", "003-dense"]), (1, ["002-my_dense"]), (2, ["000-conv"])]
    ):
        listing = report_payload(small, f"r{run_id}/features")
        for layer, folder in zip(listing["layers"], layers, strict=True):
            for v in layer["visualized"]:
                part_key = "b" if v["epoch"] is None else f"e{v['epoch']}"
                for c in v["channels"]:
                    there = (
                        small / "data" / f"r{run_id}/units/{folder}/{part_key}/c{c}.js"
                    ).is_file()
                    assert there == (c in v["in_report"])
                    held += there
    assert held == part.units.included
