"""The viewer's API (``Api.handle``, no sockets) on real runs written through the store: the
bytes it answers are the stored values, its errors are JSON, and no request path reaches a
file outside the packaged assets."""

from __future__ import annotations

import struct
import time

import matplotlib
import numpy as np
import orjson
import pytest
from analysis_helpers import write_run

from pipeline.analysis import analyze
from pipeline.rendering.layout import mosaic_sources, rank_note, shape_label, to_image
from pipeline.store import RunWriter, open_run
from pipeline.store.verify import info_table
from pipeline.viewer import Api
from pipeline.viewer.api import ASSETS
from pipeline.viewer.colormaps import NAMES, colormaps_json, lut

N = 10
SHAPES = {"maps": (4, 5), "features": (3, 3, 2), "vector": (7,)}


def layers(seed: int = 0, epochs: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lead = (epochs, N) if epochs else (N,)
    out = {name: rng.normal(size=lead + shape).astype("float32") for name, shape in SHAPES.items()}
    if not epochs:
        out["maps"][3, 1, 2] = np.nan  # a NaN and an inf: left out of the min/max headers
        out["maps"][3, 0, 0] = np.inf
    return out


@pytest.fixture
def batch_run(tmp_path):
    data = layers()
    return write_run(tmp_path / "batch", data, batch=4), data


@pytest.fixture
def train_run(tmp_path):
    data = layers(1, epochs=3)
    root = write_run(tmp_path / "train", data, batch=4, epochs=[0, 1, 2])
    lines = [{"epoch": e, "loss": 1.0 / (e + 1), "accuracy": float("nan")} for e in range(3)]
    (root / "metrics.jsonl").write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in lines))
    return root, data


def get(api: Api, target: str):
    return api.handle("GET", target)


def error(resp) -> str:
    assert resp.content_type == "application/json"
    body = orjson.loads(resp.body)
    assert set(body) >= {"error"} and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def finite_minmax(a: np.ndarray) -> tuple[float, float]:
    f = a[np.isfinite(a)]
    return (float(f.min()), float(f.max())) if f.size else (float("nan"), float("nan"))


def header_float(text: str) -> float:
    return float(text)


# -- data --------------------------------------------------------------------------------------
def test_data_is_the_stored_slice_with_its_ranges(batch_run):
    root, data = batch_run
    api, run = Api([root]), open_run(root)
    for name, arr in data.items():
        layer_lo, layer_hi = finite_minmax(arr)
        for p in range(N):
            resp = get(api, f"/api/run/0/data?layer={name}&pattern={p}")
            assert resp.status == 200 and resp.content_type == "application/octet-stream"
            want = run.get(name, p)
            assert resp.body == want.astype("<f4").tobytes()
            got = np.frombuffer(resp.body, "<f4").reshape(
                [int(d) for d in resp.headers["X-Shape"].split(",")]
            )
            np.testing.assert_array_equal(got, arr[p])  # what was written, NaN and inf kept
            lo, hi = finite_minmax(arr[p])
            assert header_float(resp.headers["X-Min"]) == np.float32(lo)
            assert header_float(resp.headers["X-Max"]) == np.float32(hi)
            assert header_float(resp.headers["X-Layer-Min"]) == np.float32(layer_lo)
            assert header_float(resp.headers["X-Layer-Max"]) == np.float32(layer_hi)
    resp = get(api, "/api/run/0/data?layer=maps&pattern=3")
    assert np.isnan(np.frombuffer(resp.body, "<f4")[1 * 5 + 2])


def test_float16_runs_answer_float32(tmp_path):
    data = {"maps": np.linspace(-1, 1, N * 6, dtype="float32").reshape(N, 2, 3)}
    root = write_run(tmp_path / "half", data, batch=5, dtype="float16")
    resp = get(Api([root]), "/api/run/0/data?layer=maps&pattern=7")
    assert resp.status == 200
    want = data["maps"][7].astype("float16").astype("<f4")
    assert resp.body == want.tobytes() and resp.headers["X-Shape"] == "2,3"


def test_a_scalar_output_keeps_its_empty_shape(tmp_path):
    values = np.arange(N, dtype="float32") - 2.5  # one number per pattern: rank 0
    resp = get(
        Api([write_run(tmp_path / "r", {"s": values}, batch=4)]),
        "/api/run/0/data?layer=s&pattern=7",
    )
    assert resp.status == 200 and resp.headers["X-Shape"] == ""
    assert resp.body == np.float32(4.5).tobytes() and resp.headers["X-Min"] == "4.5"


def test_a_pattern_without_finite_values_says_nan(tmp_path):
    values = np.zeros((N, 2, 2), "float32")
    values[4] = np.nan
    resp = get(
        Api([write_run(tmp_path / "r", {"maps": values}, batch=5)]),
        "/api/run/0/data?layer=maps&pattern=4",
    )
    assert resp.status == 200
    assert resp.headers["X-Min"] == "nan" and resp.headers["X-Max"] == "nan"
    assert float(resp.headers["X-Layer-Min"]) == 0.0


def test_training_epochs(train_run):
    root, data = train_run
    api = Api([root])
    for e in range(3):
        resp = get(api, f"/api/run/0/data?layer=features&pattern=6&epoch={e}")
        assert resp.status == 200 and resp.body == data["features"][e, 6].tobytes()
        lo, hi = finite_minmax(data["features"][e])
        assert float(resp.headers["X-Layer-Min"]) == lo and float(resp.headers["X-Layer-Max"]) == hi
    last = get(api, "/api/run/0/data?layer=features&pattern=6")  # no epoch: the last one
    assert last.body == data["features"][2, 6].tobytes()
    info = orjson.loads(get(api, "/api/runs").body)["runs"][0]
    assert info["mode"] == "train" and info["epochs"] == [0, 1, 2]
    assert info["has_metrics"] is True and info["patterns_ready"] == N
    metrics = orjson.loads(get(api, "/api/run/0/metrics").body)["metrics"]
    assert [m["loss"] for m in metrics] == [1.0, 0.5, 1.0 / 3]
    assert metrics[0]["accuracy"] is None  # NaN -> null: valid JSON for the page
    assert open_run(root).metrics()[0]["epoch"] == 0
    for bad in ("epoch=3", "epoch=-1"):
        resp = get(api, f"/api/run/0/data?layer=maps&pattern=0&{bad}")
        assert resp.status == 404 and "epoch" in error(resp)
    resp = get(api, "/api/run/0/data?layer=maps&pattern=0&epoch=1.5")
    assert resp.status == 400 and "epoch" in error(resp)


# -- runs, colormaps, info, model ----------------------------------------------------------------
def test_runinfo(batch_run, train_run, tmp_path):
    api = Api([batch_run[0], train_run[0]])
    runs = orjson.loads(get(api, "/api/runs").body)["runs"]
    assert [r["id"] for r in runs] == [0, 1]
    b = runs[0]
    assert b["name"] == "batch" and b["mode"] == "batch" and b["epochs"] == [None]
    assert [(d["name"], d["class"], tuple(d["shape"])) for d in b["layers"]] == [
        (n, "Dense", s) for n, s in SHAPES.items()
    ]
    assert [d["dir"] for d in b["layers"]] == [r.dir for r in open_run(batch_run[0]).layer_records]
    assert b["inputs"] == [] and b["num_patterns"] == N and b["patterns_ready"] == N
    assert b["has_analysis"] is False and b["has_model"] is False and b["has_metrics"] is False
    size = (batch_run[0] / "manifest.jsonl").stat()
    assert b["version"] == f"{size.st_size}-{size.st_mtime_ns}"
    assert runs[1]["name"] == "train" and runs[1]["mode"] == "train"


def test_info_and_model(batch_run):
    root, _ = batch_run
    api = Api([root])
    assert orjson.loads(get(api, "/api/run/0/info").body) == {"text": info_table(open_run(root))}
    resp = get(api, "/api/run/0/model.png")
    assert resp.status == 404 and "model.png" in error(resp)
    from PIL import Image

    Image.new("RGB", (3, 2), (9, 8, 7)).save(root / "model.png")
    api = Api([root])
    resp = get(api, "/api/run/0/model.png")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert resp.body == (root / "model.png").read_bytes()
    assert orjson.loads(get(api, "/api/runs").body)["runs"][0]["has_model"] is True


def test_colormaps_are_matplotlibs_tables():
    resp = get(Api([]), "/api/colormaps")
    body = orjson.loads(resp.body)
    assert body["names"] == list(NAMES) and set(body["luts"]) == set(NAMES)
    assert body == colormaps_json(NAMES)
    for name in NAMES:
        table = lut(name)
        assert table.shape == (256, 3) and table.dtype == np.uint8
        # matplotlib's own 256 entries, looked up by integer index
        cmap = matplotlib.colormaps[name]
        np.testing.assert_array_equal(table, cmap(np.arange(256), bytes=True)[:, :3])
        assert body["luts"][name] == table.tolist()
    assert lut("viridis")[0].tolist() == [68, 1, 84]


# -- layouts -----------------------------------------------------------------------------------------
# every rank to_image draws: a scalar, vectors (square, padded, a single value), 2-D, channel
# mosaics with up to and beyond 64 channels, (D, H, W, C) volumes, a rank-5 output (flattened)
LAYOUT_SHAPES = [
    (),
    (1,),
    (7,),
    (9,),
    (10,),
    (1, 1),
    (4, 5),
    (3, 4, 1),
    (3, 4, 2),
    (2, 3, 64),
    (3, 4, 70),
    (2, 3, 4, 5),
    (3, 2, 3, 66),
    (2, 3, 4, 5, 6),
]


def expand(layout: dict) -> np.ndarray:
    """What the page does with a layout's blocks: per pixel the flat index of the value it
    shows, -1 for padding. Each block lies inside the image and no two overlap."""
    h, w = layout["h"], layout["w"]
    src = np.full((h, w), -1, np.int64)
    covered = np.zeros((h, w), np.int64)
    for row, col, bh, bw, offset, row_step, col_step in layout["blocks"]:
        assert 0 <= row and row + bh <= h and 0 <= col and col + bw <= w, layout["blocks"]
        y, x = np.mgrid[0:bh, 0:bw]
        src[row : row + bh, col : col + bw] = offset + y * row_step + x * col_step
        covered[row : row + bh, col : col + bw] += 1
    assert covered.max(initial=0) <= 1
    return src


def render_index_map(shape: tuple[int, ...]) -> np.ndarray:
    """render's ``to_image`` of the values 0, 1, 2, ...: each pixel shows its value's flat
    index (of the mean over D for a volume: the mean of d * H*W*C + j over d is
    j + H*W*C * (D - 1) / 2), NaN padding as -1. Exact: every number here is an integer or a
    half below 2**24."""
    size = int(np.prod(shape, dtype=np.int64))
    image = to_image(np.arange(size, dtype=np.float64).reshape(shape))
    if len(shape) == 4:
        image = image - np.prod(shape[1:]) * (shape[0] - 1) / 2
    return np.where(np.isnan(image), -1, image).astype(np.int64)


def layout_of(api: Api, shape: tuple[int, ...]) -> dict:
    resp = get(api, "/api/layout?shape=" + ",".join(str(v) for v in shape))
    assert resp.status == 200 and resp.content_type == "application/json", resp.body
    return orjson.loads(resp.body)


@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=str)
def test_layouts_are_renders(shape):
    layout = layout_of(Api([]), shape)
    src = expand(layout)
    np.testing.assert_array_equal(src, render_index_map(shape))
    assert layout["shape"] == list(shape)
    assert layout["label"] == shape_label(shape)
    assert layout["note"] == rank_note(shape, 64)
    assert layout["mean_over"] == (shape[0] if len(shape) == 4 else None)
    source = shape[1:] if len(shape) == 4 else shape
    assert layout["source"] == list(source)
    assert src.max() < np.prod(source, dtype=np.int64)
    if len(shape) in (3, 4):
        h, w, c = source
        # every shown pixel of a mosaic is the one render's mosaic_sources names
        rows, cols = np.mgrid[0 : layout["h"], 0 : layout["w"]]
        ok, index = mosaic_sources(rows.ravel(), cols.ravel(), source)
        want = np.full(rows.size, -1, np.int64)
        want[ok] = index
        np.testing.assert_array_equal(src.ravel(), want)
        # one channel's map alone (the analysis thumbnails), the channels beyond 64 included
        ch_h, ch_w, row_step, col_step = layout["channel"]
        values = np.arange(h * w * c).reshape(h, w, c)
        for k in (0, c // 2, c - 1):
            one = {"h": ch_h, "w": ch_w, "blocks": [[0, 0, ch_h, ch_w, k, row_step, col_step]]}
            np.testing.assert_array_equal(expand(one), values[:, :, k])
    else:
        assert layout["channel"] is None


def test_layout_requests_that_are_refused():
    api = Api([])
    for query, status in [
        ("shape=x", 400),
        ("shape=3,,4", 400),
        ("shape=3,4,", 400),
        ("shape=-1", 400),
        ("shape=%203", 400),
        ("shape=99999999999", 400),  # 11 digits
        ("shape=65536,65536", 400),  # more values than the page can index
        ("shape=" + ",".join(["1"] * 33), 400),  # rank 33
        ("shape=1&shape=2", 400),
        ("", 400),
    ]:
        resp = get(api, f"/api/layout?{query}")
        assert resp.status == status, (query, resp.body)
        error(resp)
    assert get(api, "/api/layout/").status == 404
    assert layout_of(api, (1,) * 32)["label"] == shape_label((1,) * 32)


# -- analysis --------------------------------------------------------------------------------------
def test_analysis_and_cka(batch_run):
    root, _ = batch_run
    api = Api([root])
    resp = get(api, "/api/run/0/analysis?layer=features")
    assert resp.status == 404 and "passage analyze" in error(resp)
    assert get(api, "/api/run/0/cka").status == 404
    analyze(root, workers=1, pictures=False, quiet=True)
    run = open_run(root)
    assert orjson.loads(get(api, "/api/runs").body)["runs"][0]["has_analysis"] is True
    for name in SHAPES:
        body = orjson.loads(get(api, f"/api/run/0/analysis?layer={name}").body)
        want = run.analysis(name)
        assert body["layer"] == name and body["shape"] == list(SHAPES[name])
        for key in ("mean", "std", "frac_positive", "hist_edges", "top_value", "channel_mean"):
            got = np.array([np.nan if v is None else v for v in np.ravel(body[key])], float)
            np.testing.assert_array_equal(got.reshape(want[key].shape), want[key], err_msg=key)
        assert body["dead"] == [bool(v) for v in want["dead"]]
        assert body["hist_counts"] == want["hist_counts"].tolist()
        assert body["top_index"] == want["top_index"].tolist()
    stored_cka = run.cka()
    cka = orjson.loads(get(api, "/api/run/0/cka").body)
    assert cka["names"] == stored_cka.layers and cka["method"] == stored_cka.method == "exact"
    assert cka["epoch"] is None
    np.testing.assert_array_equal(np.array(cka["matrix"], float), stored_cka.matrix)
    resp = get(api, "/api/run/0/analysis?layer=nope")
    assert resp.status == 404 and "nope" in error(resp)


# -- a live run ------------------------------------------------------------------------------------
def test_a_growing_run_is_read_again(tmp_path):
    data = layers()
    root = write_run(tmp_path / "live", data, batch=4, stop=4)
    api = Api([root])
    first = orjson.loads(get(api, "/api/runs").body)["runs"][0]
    assert first["patterns_ready"] == 4
    assert get(api, "/api/run/0/data?layer=maps&pattern=3").status == 200
    resp = get(api, "/api/run/0/data?layer=maps&pattern=6")
    assert resp.status == 404 and "not captured" in error(resp)
    info = orjson.loads((root / "run.json").read_bytes())
    with RunWriter(root, info) as w:  # the same run, resumed: more chunks land
        for name, arr in data.items():
            w.write(name, None, 4, arr[4:8])
        w.write("maps", None, 8, data["maps"][8:])  # one layer ahead of the others
    now = orjson.loads(get(api, "/api/runs").body)["runs"][0]
    assert now["version"] != first["version"] and now["patterns_ready"] == 8
    resp = get(api, "/api/run/0/data?layer=maps&pattern=6")
    assert resp.status == 200 and resp.body == data["maps"][6].tobytes()
    assert get(api, "/api/run/0/data?layer=maps&pattern=9").status == 200
    assert get(api, "/api/run/0/data?layer=vector&pattern=9").status == 404


# -- damaged files -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage, reason",
    [
        ("flip", "checksum mismatch"),
        ("truncate", "truncated file"),
        ("delete", "missing file"),
    ],
)
def test_damaged_file_is_422(batch_run, damage, reason):
    root, data = batch_run
    run = open_run(root)
    entry = run.entry_for("maps", 5)
    path = root / entry.path
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-3] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[:-8]))
    else:
        path.unlink()
    api = Api([root])
    for _ in range(2):  # the second answer comes from what the first check found
        resp = get(api, "/api/run/0/data?layer=maps&pattern=5")
        assert resp.status == 422, resp.body
        error(resp)
        assert orjson.loads(resp.body)["damaged"] == reason
    ok = get(api, "/api/run/0/data?layer=maps&pattern=1")  # another file of the layer
    assert ok.status == 200 and ok.body == data["maps"][1].tobytes()


def test_a_large_file_is_served_then_checked_in_the_background(tmp_path):
    big = np.random.default_rng(3).standard_normal((300, 60, 70)).astype(np.float32)  # 5 MB
    root = write_run(tmp_path / "big", {"big": big}, 300)
    entry = open_run(root).entry_for("big", 0)
    assert entry.bytes > 4 << 20
    path = root / entry.path
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # inside pattern 299's values; pattern 4 is intact
    path.write_bytes(bytes(raw))
    api = Api([root])
    try:
        first = get(api, "/api/run/0/data?layer=big&pattern=4")
        assert first.status == 200 and first.body == big[4].tobytes()  # served before its CRC
        deadline = time.monotonic() + 30
        while api.runs._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        later = get(api, "/api/run/0/data?layer=big&pattern=4")
        assert later.status == 422 and orjson.loads(later.body)["damaged"] == "checksum mismatch"
        path.write_bytes(bytes(raw[:-100]))  # a wrong size is found before serving
        api2 = Api([root])
        cut = get(api2, "/api/run/0/data?layer=big&pattern=4")
        assert cut.status == 422 and orjson.loads(cut.body)["damaged"] == "truncated file"
        api2.runs.close()
    finally:
        api.runs.close()


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, status",
    [
        ("/api/run/1/data?layer=maps&pattern=0", 404),  # unknown run
        ("/api/run/-1/data?layer=maps&pattern=0", 404),
        ("/api/run/x/data?layer=maps&pattern=0", 400),
        ("/api/run/0/data?layer=nope&pattern=0", 404),
        ("/api/run/0/data?layer=input%3Aimage&pattern=0", 404),
        ("/api/run/0/data?layer=maps&pattern=10", 404),
        ("/api/run/0/data?layer=maps&pattern=-1", 404),
        ("/api/run/0/data?layer=maps&pattern=99999999999999999", 404),
        ("/api/run/0/data?layer=maps&pattern=1e3", 400),
        ("/api/run/0/data?layer=maps&pattern=", 400),
        ("/api/run/0/data?layer=maps&pattern=0x1", 400),
        ("/api/run/0/data?layer=maps&pattern=999999999999999999999999", 400),
        ("/api/run/0/data?layer=maps", 400),
        ("/api/run/0/data?pattern=0", 400),
        ("/api/run/0/data?layer=maps&pattern=1&pattern=2", 400),
        ("/api/run/0/data?layer=maps&pattern=0&epoch=0", 404),  # a batch run has no epochs
        ("/api/run/0/input?name=image&pattern=0", 404),  # captured without --keep-inputs
        ("/api/run/0/nothing", 404),
        ("/api/run/0/data/../info", 404),
        ("/api/runs/", 404),
        ("/api", 404),
    ],
)
def test_bad_requests_are_json(batch_run, target, status):
    resp = get(Api([batch_run[0]]), target)
    assert resp.status == status, (target, resp.body)
    error(resp)


def test_other_methods_are_405(batch_run):
    api = Api([batch_run[0]])
    for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE"):
        resp = api.handle(method, "/api/runs")
        assert resp.status == 405 and resp.headers["Allow"] == "GET"
        assert "read-only" in error(resp)


TRAVERSALS = [
    "/data/../../etc/passwd",
    "/assets/../../pyproject.toml",
    "/assets/../api.py",
    "/assets/..%2fapi.py",
    "/assets/%2e%2e/app.js",
    "/assets/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/%2e%2e%2f%2e%2e%2fetc/passwd",
    "/..%2f..%2fetc/passwd",
    "/%252e%252e%252fetc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "/assets//etc/passwd",
    "/assets/%2Fetc%2Fpasswd",
    "/assets/C:%5Cwindows%5Cwin.ini",
    "/assets/..\\..\\pyproject.toml",
    "http://127.0.0.1/etc/passwd",
    "etc/passwd",
    "*",
    "",
    "/assets/app.js%00.png",
    "/assets/\x00",
    "/%00",
    "/assets/index.html/",
    "/assets/./index.html",
    "/assets/.",
    "/api/run/0/../../../../etc/passwd",
    "/api/run/..%2f..%2f/info",
    "/api/run/0%2f..%2f1/info",
    "/assets/" + "a" * 5000,
    "/" + "x/" * 3000,
    "/%ff%fe",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_and_odd_paths_are_404(batch_run, target):
    resp = get(Api([batch_run[0]]), target)
    assert resp.status == 404, (target, resp.status, resp.body[:200])
    message = error(resp)
    assert len(message) < 400
    for secret in (b"root:", b"[project]", b"import ", b"<!doctype", b"<html"):
        assert secret not in resp.body.lower()


def test_assets_by_exact_name_and_the_page(batch_run):
    api = Api([batch_run[0]])
    page = get(api, "/")
    assert page.status == 200 and page.content_type.startswith("text/html")
    assert get(api, "/index.html").body == page.body
    for name, path in ASSETS.items():
        resp = get(api, f"/assets/{name}")
        assert resp.status == 200 and resp.body == path.read_bytes()
        assert get(api, f"/assets/{name}?v=1").body == resp.body
    if "app.js" in ASSETS:
        assert get(api, "/assets/app.js").content_type.startswith("text/javascript")
    for other in ("/assets/nope.js", "/assets/APP.JS", "/assets/", "/assets"):
        resp = get(api, other)
        assert resp.status == 404, other
        error(resp)


def test_floats_in_headers_round_trip():
    # a header number parses back to the float32 it came from, as the page parses it
    from pipeline.viewer.api import number_text

    for v in (np.float32(0.1), np.float32(-3.4028235e38), np.float32(1e-45), np.float32(0)):
        assert np.float32(float(number_text(float(v)))) == v
    assert number_text(float("nan")) == "nan" and number_text(float("inf")) == "nan"
    assert struct.pack("<f", 1.0) == np.float32(1.0).tobytes()


# -- stored inputs of a real capture ----------------------------------------------------------------
def test_inputs_and_layers_of_a_real_capture(tmp_path, seed_model, keras_layer_output):
    from pipeline.capturing.stream import capture_model
    from pipeline.config import CaptureConfig, Config, SelectConfig

    cfg = Config(
        capture=CaptureConfig(
            out=str(tmp_path / "run"), patterns="random:3", architecture=False, keep_inputs=True
        ),
        select=SelectConfig(rule="seed"),
    )
    run = capture_model(seed_model, cfg, quiet=True)
    api = Api([run.path])
    info = orjson.loads(get(api, "/api/runs").body)["runs"][0]
    assert info["inputs"] == run.inputs == ["input"]
    x = np.stack([run.get_input("input", p) for p in range(3)])
    for p in range(3):
        resp = get(api, f"/api/run/0/input?name=input&pattern={p}")
        assert resp.status == 200 and resp.headers["X-Shape"] == "50,50"
        assert resp.body == run.get_input("input", p).astype("<f4").tobytes()
    layer = info["layers"][0]["name"]
    want = keras_layer_output(seed_model, layer, x)
    for p in range(3):
        resp = get(api, f"/api/run/0/data?layer={layer}&pattern={p}")
        got = np.frombuffer(resp.body, "<f4").reshape(want.shape[1:])
        np.testing.assert_allclose(got, want[p], rtol=1e-5, atol=1e-6)
    resp = get(api, "/api/run/0/input?name=other&pattern=0")
    assert resp.status == 404 and "input" in error(resp)
    resp = get(api, "/api/run/0/input?name=input&pattern=3")
    assert resp.status == 404
