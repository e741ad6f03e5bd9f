"""`passage report`: the static folder's files, read back as the page reads them (the scripts'
``PASSAGE.put(key, payload)`` calls), every payload against the stored values and numpy."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import write_run
from externals import need_chromium
from PIL import Image

from pipeline.analysis import analyze
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.rendering.layout import rank_note, shape_label, to_image
from pipeline.store import RunWriter, open_run
from pipeline.store.verify import info_table
from pipeline.viewer import Api
from pipeline.viewer.colormaps import NAMES, lut
from pipeline.viewer.static_report import build_report

PUT = re.compile(r"PASSAGE\.put\((.*)\);\n\Z", re.S)


def read_put(path: Path) -> tuple[str, object]:
    """The key and payload of one data script, as the page's ``PASSAGE.put`` receives them."""
    text = path.read_text(encoding="utf-8")
    match = PUT.match(text)
    assert match, f"{path}: not one PASSAGE.put call"
    key, end = json.JSONDecoder().raw_decode(match.group(1))
    rest = match.group(1)[end:]
    assert rest.startswith(", ")
    return key, json.loads(rest[2:])


def read_static(out: Path) -> dict:
    text = (out / "data" / "index.js").read_text(encoding="utf-8")
    prefix = "window.PASSAGE_STATIC = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix) : -2])


def decoded(payload: dict) -> np.ndarray:
    raw = base64.b64decode(payload["b64"])
    return np.frombuffer(raw, dtype="<f4").reshape(payload["shape"])


def finite_range(a: np.ndarray) -> tuple[float | None, float | None]:
    f = a[np.isfinite(a)]
    return (float(f.min()), float(f.max())) if f.size else (None, None)


def check_payload(payload: dict, values: np.ndarray, whole_layer: np.ndarray) -> None:
    got = decoded(payload)
    assert got.shape == values.shape
    np.testing.assert_array_equal(got, values.astype(np.float32))  # NaN == NaN here
    assert (payload["min"], payload["max"]) == finite_range(values.astype(np.float32))
    assert (payload["layerMin"], payload["layerMax"]) == finite_range(whole_layer)


@pytest.fixture
def batch_run(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    layers = {
        "conv": rng.normal(size=(23, 4, 5, 3)).astype(np.float32),
        "dense": rng.normal(size=(23, 6, 7)).astype(np.float32),
        "out/vec": rng.normal(size=(23, 10)).astype(np.float32),
    }
    layers["dense"][8, 2, 3] = np.nan
    layers["dense"][9] = np.nan  # no finite value at all: min/max null
    return write_run(tmp_path / "batch", layers, batch=5), layers


def test_batch_report_files_and_payloads(batch_run, tmp_path):
    root, layers = batch_run
    out = tmp_path / "report"
    summary = build_report([root], out, patterns="2,7-9,22", quiet=True)
    run = open_run(root)
    wanted = [2, 7, 8, 9, 22]
    assert summary.patterns == wanted and not summary.damaged
    data = {p.relative_to(out / "data").as_posix() for p in (out / "data").rglob("*.js")}
    dirs = {rec.name: rec.dir for rec in run.layer_records}
    expected = {f"r0/{dirs[n]}/b/{p}.js" for n in layers for p in wanted}
    assert data == expected | {"index.js", "r0/info.js"}
    for name, arr in layers.items():
        for p in wanted:
            key, payload = read_put(out / "data" / f"r0/{dirs[name]}/b/{p}.js")
            assert key == f"r0/{dirs[name]}/b/{p}"
            check_payload(payload, arr[p], arr)
    _, nan_payload = read_put(out / "data" / f"r0/{dirs['dense']}/b/9.js")
    assert nan_payload["min"] is None and nan_payload["max"] is None
    _, info = read_put(out / "data" / "r0/info.js")
    assert info == {"text": info_table(run)}
    static = read_static(out)
    assert static["patterns"] == wanted
    assert static["colormaps"]["names"] == list(NAMES)
    assert static["colormaps"]["luts"]["magma"] == lut("magma").tolist()
    [info0] = static["runs"]
    assert info0["id"] == 0 and info0["name"] == "batch" and info0["epochs"] == [None]
    # the layout of every shape the page draws (and the scalar's, for a cell not loaded):
    # byte for byte the server's answers
    assert set(static["layouts"]) == {"", "4,5,3", "6,7", "10"}
    assert_layouts_are_the_apis(out, root, static)
    assert [layer["name"] for layer in info0["layers"]] == list(layers)
    sizes = sum(
        p.stat().st_size for p in (out / "data").rglob("*") if p.is_file() and p.name != "index.js"
    )
    assert static["bytes"] == summary.bytes == sizes
    assert summary.files == len(expected) + 1
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.index('<script src="data/index.js"></script>') < page.index("assets/app.js")
    assert f"{summary.bytes / 1000:.1f} kB" in page and "5 pattern(s)" in page
    app = Path(__file__).resolve().parents[1] / "pipeline" / "viewer" / "assets"
    for name in ("app.js", "style.css"):
        assert (out / "assets" / name).read_bytes() == (app / name).read_bytes()
    assert not list(out.rglob("*.tmp*"))


def assert_layouts_are_the_apis(out: Path, root: Path, static: dict) -> None:
    """Each of the report's layouts is, byte for byte, ``/api/layout``'s answer."""
    raw = (out / "data" / "index.js").read_bytes()
    api = Api([root])
    for key, layout in static["layouts"].items():
        resp = api.handle("GET", f"/api/layout?shape={key}")
        assert resp.status == 200
        assert json.dumps(key).encode() + b": " + resp.body in raw
        assert layout == json.loads(resp.body)


def test_training_runs_side_by_side_with_metrics_analysis_and_diagram(tmp_path):
    rng = np.random.default_rng(4)
    epochs = [0, 3]
    a = {"d1": rng.normal(size=(2, 6, 3, 3)).astype(np.float32)}
    b = {"d1": rng.normal(size=(2, 6, 3, 3)).astype(np.float32)}
    run_a = write_run(tmp_path / "a", a, batch=4, epochs=epochs)
    run_b = write_run(tmp_path / "b", b, batch=4, epochs=epochs)
    (run_a / "metrics.jsonl").write_text(
        '{"epoch": 0, "step": 2, "time": 0.1, "loss": 0.9}\n'
        '{"epoch": 3, "step": 8, "time": 0.1, "loss": 0.4}\n'
    )
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(run_a / "model.png")
    analyze(run_a, pictures=False, workers=1, quiet=True)
    out = tmp_path / "report"
    code = main(["report", str(run_a), str(run_b), "--out", str(out), "-q"])
    assert code == 0
    dir_ = open_run(run_a).layer("d1").dir
    for r, arrs in ((0, a), (1, b)):
        for e_i, e in enumerate(epochs):
            for p in range(6):
                key, payload = read_put(out / "data" / f"r{r}/{dir_}/e{e}/{p}.js")
                assert key == f"r{r}/{dir_}/e{e}/{p}"
                check_payload(payload, arrs["d1"][e_i, p], arrs["d1"][e_i])
    _, metrics = read_put(out / "data" / "r0/metrics.js")
    assert metrics == {"metrics": open_run(run_a).metrics()}
    assert (out / "data/r0/model.png").read_bytes() == (run_a / "model.png").read_bytes()
    _, stats = read_put(out / "data" / f"r0/analysis/{dir_}.js")
    want = open_run(run_a).analysis("d1")  # the last epoch
    np.testing.assert_allclose(stats["mean"], want["mean"])
    assert stats["hist_counts"] == want["hist_counts"].tolist()
    _, cka = read_put(out / "data" / "r0/cka.js")
    assert cka["names"] == ["d1"] and np.allclose(cka["matrix"], [[1.0]])
    assert not (out / "data/r1/metrics.js").exists() and not (out / "data/r1/model.png").exists()
    static = read_static(out)
    assert [r["name"] for r in static["runs"]] == ["a", "b"]
    assert static["runs"][0]["epochs"] == epochs and static["runs"][0]["mode"] == "train"
    assert static["runs"][0]["has_analysis"] and not static["runs"][1]["has_analysis"]
    assert set(static["layouts"]) == {"", "3,3", "1,1"}  # d1, and the (1, 1) CKA matrix
    assert_layouts_are_the_apis(out, run_a, static)


def test_a_report_above_the_bound_is_refused_before_writing(batch_run, tmp_path):
    root, _ = batch_run
    whole = build_report([root], tmp_path / "whole", patterns="0-22", quiet=True)
    layer_bytes = sum(p.stat().st_size for p in (tmp_path / "whole/data/r0").glob("*/b/*.js"))
    out = tmp_path / "report"
    with pytest.raises(ConfigError) as info:
        build_report([root], out, patterns="0-22", max_mb=0.01, quiet=True)
    message = str(info.value)
    assert not out.exists()
    said = re.search(r"about ([\d.]+) kB of data for 23 pattern\(s\), above --max-mb 0.01", message)
    assert said, message
    # the estimate, made before writing, is the written size within 20 % (never below it)
    assert layer_bytes <= float(said.group(1)) * 1000 <= 1.2 * layer_bytes
    assert whole.bytes > 0.01e6 and "\n" not in message
    fit = int(re.search(r"--patterns 0-(\d+)", message).group(1)) + 1
    summary = build_report([root], out, patterns=f"0-{fit - 1}", max_mb=0.01, quiet=True)
    assert 0 < summary.bytes <= 0.01e6 and summary.patterns == list(range(fit))


def test_damaged_files_become_damaged_payloads(batch_run, tmp_path, capsys):
    root, layers = batch_run
    run = open_run(root)
    entry = run.entry_for("dense", 7)  # patterns 5..9
    path = root / entry.path
    path.write_bytes(path.read_bytes()[:-4])
    out = tmp_path / "report"
    code = main(["report", str(root), "--out", str(out), "--patterns", "4-11", "-q"])
    assert code == 1 and "damaged" in capsys.readouterr().err
    dense = run.layer("dense").dir
    for p in range(4, 12):
        _, payload = read_put(out / "data" / f"r0/{dense}/b/{p}.js")
        if 5 <= p <= 9:
            assert payload == {"damaged": "truncated file"}
        else:
            check_payload(payload, layers["dense"][p], layers["dense"])
    _, conv = read_put(out / "data" / f"r0/{run.layer('conv').dir}/b/7.js")
    check_payload(conv, layers["conv"][7], layers["conv"])


def test_patterns_default_subset_and_errors(tmp_path, capsys):
    layers = {"a": np.arange(12 * 4, dtype=np.float32).reshape(12, 2, 2)}
    root = write_run(tmp_path / "run", layers, batch=5, stop=10)  # patterns 10, 11 missing
    out = tmp_path / "report"
    summary = build_report([root], out, quiet=True)  # default 0-99: the run's 12
    assert summary.patterns == list(range(12))
    files = sorted(int(p.stem) for p in (out / "data").rglob("*.js") if p.stem.isdigit())
    assert files == list(range(10))  # only what was captured
    assert read_static(out)["runs"][0]["patterns_ready"] == 10
    assert main(["report", str(root), "--out", str(tmp_path / "r2"), "--patterns", "5-20"]) == 2
    assert main(["report", str(root), "--out", str(tmp_path / "r3"), "--patterns", "x"]) == 2
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "0..11" in err[0] and "'x'" in err[1]
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_stored_inputs_are_exported(tmp_path):
    rng = np.random.default_rng(9)
    image = rng.normal(size=(7, 4, 4)).astype(np.float32)
    dense = rng.normal(size=(7, 5)).astype(np.float32)
    info = {
        "mode": "batch",
        "model": "test",
        "fingerprint": "inputs",
        "layers": [{"index": 0, "name": "d", "class": "Dense", "shape": [5], "dir": "000-d"}],
        "stored_inputs": [
            {"index": 0, "name": "img", "shape": [4, 4], "dtype": "float32", "dir": "000-img"}
        ],
        "num_patterns": 7,
        "patterns": "random:7",
    }
    root = tmp_path / "run"
    with RunWriter(root, info) as w:
        for first in (0, 4):
            w.write("d", None, first, dense[first : first + 4])
            w.write("input:img", None, first, image[first : first + 4])
    out = tmp_path / "report"
    build_report([root], out, patterns="1,5", quiet=True)
    for p in (1, 5):
        key, payload = read_put(out / "data" / f"r0/inputs/img/{p}.js")
        assert key == f"r0/inputs/img/{p}"
        check_payload(payload, image[p], image)
        _, d = read_put(out / "data" / f"r0/000-d/b/{p}.js")
        check_payload(d, dense[p], dense)
    assert read_static(out)["runs"][0]["inputs"] == ["img"]


# -- the page draws every rank as render lays it out --------------------------------------------
READY = "() => document.body.dataset.state === 'ready'"


def every_rank(n: int) -> dict[str, np.ndarray]:
    """A layer of each rank to_image draws, ``n`` patterns: a scalar, a padded vector, 2-D, a
    mosaic beyond 64 channels, a (D, H, W, C) volume, a rank-5 output (flattened)."""
    rng = np.random.default_rng(5)
    shapes = {
        "scalar": (),
        "vec": (7,),
        "plane": (4, 5),
        "wide": (3, 4, 70),
        "volume": (2, 3, 4, 5),
        "rank5": (2, 2, 3, 2, 2),
    }
    return {k: rng.normal(size=(n, *s)).astype(np.float32) for k, s in shapes.items()}


def pixels(canvas) -> np.ndarray:
    """The RGB pixels of a canvas (a Playwright locator), read back with getImageData."""
    got = canvas.evaluate(
        """(c) => {
            const copy = document.createElement("canvas");
            copy.width = c.width;
            copy.height = c.height;
            const ctx = copy.getContext("2d", {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            return {w: c.width, h: c.height, px: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
        }"""
    )
    return np.array(got["px"], np.uint8).reshape(got["h"], got["w"], 4)[..., :3]


def assert_painted(canvas, image: np.ndarray, lo: float, hi: float) -> None:
    """The canvas is ``image`` (NaN: padding, left unchecked) through viridis over [lo, hi]:
    LUT index round((v - lo) / (hi - lo) * 255), as the page computes it in doubles (0 when
    hi == lo: a scalar, a constant)."""
    got = pixels(canvas)
    assert got.shape[:2] == image.shape
    v = image.astype(np.float64)
    mask = np.isfinite(v)
    if hi > lo:
        index = np.clip(np.floor((v - lo) / (hi - lo) * 255 + 0.5), 0, 255)
    else:
        index = np.zeros_like(v)
    want = lut("viridis")[np.where(mask, index, 0).astype(np.int64)]
    np.testing.assert_array_equal(got[mask], want[mask])


def shown(values: np.ndarray) -> np.ndarray:
    """What the page paints of one output: a volume's mean over D (summed in doubles, then
    float32, as the page does), anything else as it is."""
    if values.ndim == 4:
        return values.astype(np.float64).mean(axis=0).astype(np.float32)
    return values


def test_the_report_draws_every_rank_as_render_lays_it_out(tmp_path):
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    layers = every_rank(6)
    root = write_run(tmp_path / "ranks", layers, batch=4)
    analyze(root, pictures=False, workers=1, quiet=True)
    out = tmp_path / "report"
    build_report([root], out, quiet=True)
    run = open_run(root)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        problems: list[str] = []

        def opened(hash_: str):
            """A new page on the report, opened at ``hash_``, once drawn."""
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto((out / "index.html").as_uri() + hash_)
            page.wait_for_function(READY, timeout=20_000)
            return page

        try:
            page = opened("#pattern=3")
            for name, arr in layers.items():
                canvas = page.locator(f'canvas[data-layer="{name}"]')
                # a cell's colors span its pattern's finite range (all its values)
                lo, hi = finite_range(arr[3])
                assert_painted(canvas, to_image(shown(arr[3])), lo, hi)
                shape = arr.shape[1:]
                note = rank_note(shape, 64)
                title = page.locator(".cell", has=canvas).locator("h3").inner_text()
                assert title == f"{name} {shape_label(shape)}" + (f" {note}" if note else "")

            # the analysis view: a volume's mean map, and the thumbnails of channel 69
            page = opened("#view=analysis&layer=volume")
            stats = json.loads(json.dumps(run.analysis("volume")["mean"].tolist()))
            mean = shown(np.asarray(stats, np.float32))  # the page holds float32
            head = page.locator("h3", has_text=re.compile("^mean$"))
            card = page.locator("#view-analysis .card").filter(has=head)
            canvas = card.locator("canvas").first  # then the colorbar's
            lo, hi = finite_range(mean)
            assert_painted(canvas, to_image(mean), lo, hi)
            w, h, cw, ch = canvas.evaluate(
                "(c) => [c.width, c.height, c.clientWidth, c.clientHeight]"
            )
            canvas.hover(position={"x": (4 + 1 + 0.5) * cw / w, "y": 0.5 * ch / h})  # channel 1
            text = card.locator(".readout").inner_text()
            match = re.fullmatch(r"\[:, 0, 0, 1\] = (\S+)", text)
            assert match, text
            assert abs(float(match.group(1)) - mean[0, 0, 1]) <= abs(mean[0, 0, 1]) * 5e-4

            page = opened("#view=analysis&layer=wide&unit=69")
            top = [int(p) for p in run.analysis("wide")["top_index"][69] if p >= 0]
            thumbs = page.locator(".thumb")
            assert thumbs.count() == len(top) > 0
            for i, p in enumerate(top):
                assert thumbs.nth(i).locator("span").inner_text().startswith(f"#{p} ")
                channel = layers["wide"][p][:, :, 69]  # beyond the mosaic's 64 channels
                lo, hi = finite_range(channel)
                assert_painted(thumbs.nth(i).locator("canvas"), channel, lo, hi)
        finally:
            browser.close()
    assert problems == []
