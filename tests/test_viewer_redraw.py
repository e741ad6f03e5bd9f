"""The pattern switch's one answer (``/api/run/N/pattern``, pipeline/viewer/pattern_api.py) and
the page that draws from it (issue 25).

The answer must carry, for every input and layer, exactly the bytes ``/data`` and ``/input``
send and the stored float32 values (compared bit for bit: nothing is rounded or re-encoded),
with the same numbers as their headers; its ``pread`` of a memory-mapped file must return the
bytes the mapping holds. In Chromium (Playwright, Debian's binary; skipped without, failing
under PASSAGE_TEST_STRICT=1) a switch asks for one answer, draws the stored values through the
colormap pixel for pixel, shows the stored value under the cursor, and breaks no
Content-Security-Policy rule; the static report (file://) draws the same without a server.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from externals import need_chromium
from test_viewer_browser import (
    READY,
    Page,
    assert_pixels,
    assert_shown,
    canvas_rgb,
    write_epochs,
)

from pipeline.store import open_run
from pipeline.viewer import Api
from pipeline.viewer.pattern_api import row_of

PHASES = ("request", "controls", "hash", "fetch", "layout", "decode", "colour", "canvas", "dom")


def parse_answer(body: bytes) -> tuple[list[dict], bytes]:
    """(parts, values) of a ``/pattern`` answer: [uint32 n][n bytes JSON][values]."""
    n = int.from_bytes(body[:4], "little")
    assert n % 4 == 0  # the values start on a float32 boundary
    return orjson.loads(body[4 : 4 + n])["parts"], body[4 + n :]


def part_values(part: dict, values: bytes) -> np.ndarray:
    raw = values[part["offset"] : part["offset"] + 4 * part["count"]]
    return np.frombuffer(raw, dtype="<f4").reshape(part["shape"])


def header_number(text: str) -> float:
    return float(text)  # "nan" for none, else Python's repr of the float


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> Path:
    """The article's model (2-D layers, a vector) with its inputs stored, 3 patterns."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("redraw") / "seed"
    args = ["capture", "-q", "--select", "all", "--keep-inputs", "--model", "builtin:seed"]
    assert main([*args, "--patterns", "random:3:1", "--out", str(out)]) == 0
    return out


# -- the answer -------------------------------------------------------------------------------
def test_the_answer_holds_every_slice_as_stored_and_as_data_sends_it(seed_run):
    run = open_run(seed_run)
    api = Api([seed_run])
    try:
        for pattern in range(run.num_patterns):
            resp = api.handle("GET", f"/api/run/0/pattern?pattern={pattern}")
            assert resp.status == 200 and resp.content_type == "application/octet-stream"
            parts, values = parse_answer(resp.body)
            assert resp.headers["X-Parts"] == str(len(parts))
            assert re.fullmatch(r"slices;dur=[0-9.]+", resp.headers["Server-Timing"])
            # the page's order: stored inputs first, then the layers
            want = [("input", n) for n in run.inputs] + [("layer", n) for n in run.layers]
            assert [(p["kind"], p["name"]) for p in parts] == want
            assert run.inputs  # --keep-inputs: the inputs are in the answer too
            for part in parts:
                if part["kind"] == "layer":
                    alone = api.handle(
                        "GET", f"/api/run/0/data?layer={part['name']}&pattern={pattern}"
                    )
                    stored = run.get(part["name"], pattern)
                else:
                    alone = api.handle(
                        "GET", f"/api/run/0/input?name={part['name']}&pattern={pattern}"
                    )
                    stored = np.asarray(
                        run.load(run.entry_for(run.input(part["name"]).key, pattern))[pattern]
                    )
                got = part_values(part, values)
                assert got.tobytes() == alone.body  # bit for bit what /data sends
                assert got.shape == np.shape(stored)
                np.testing.assert_array_equal(got, np.asarray(stored, np.float32))
                assert part["shape"] == [int(v) for v in alone.headers["X-Shape"].split(",") if v]
                for key, header in (
                    ("min", "X-Min"),
                    ("max", "X-Max"),
                    ("layerMin", "X-Layer-Min"),
                    ("layerMax", "X-Layer-Max"),
                ):
                    want_number = header_number(alone.headers[header])
                    got_number = float("nan") if part[key] is None else part[key]
                    assert got_number == want_number or (
                        np.isnan(got_number) and np.isnan(want_number)
                    )
                assert "layout" not in part
    finally:
        api.runs.close()


def test_the_answer_brings_the_layouts_when_asked(seed_run):
    api = Api([seed_run])
    try:
        parts, _ = parse_answer(api.handle("GET", "/api/run/0/pattern?pattern=1&layouts=1").body)
        for part in parts:
            shape = ",".join(str(v) for v in part["shape"])
            layout = api.handle("GET", f"/api/layout?shape={shape}")
            assert part["layout"] == orjson.loads(layout.body)
        assert api.handle("GET", "/api/run/0/pattern?pattern=1&layouts=yes").status == 400
        missing = api.handle("GET", "/api/run/0/pattern?pattern=3")
        assert missing.status == 404 and b"out of range" in missing.body
        assert api.handle("GET", "/api/run/0/pattern").status == 400
    finally:
        api.runs.close()


def test_an_epoch_and_a_damaged_file_in_the_answer(tmp_path):
    root = tmp_path / "train"
    assert write_epochs(root, 0, 1).wait(60) == 0
    run = open_run(root)
    api = Api([root])
    try:
        for epoch in (0, 1):
            parts, values = parse_answer(
                api.handle("GET", f"/api/run/0/pattern?pattern=1&epoch={epoch}").body
            )
            for part in parts:
                np.testing.assert_array_equal(
                    part_values(part, values), run.get(part["name"], 1, epoch)
                )
    finally:
        api.runs.close()
    # one layer's file damaged (before a server checked it): its part says so, the other
    # layer's values still come
    path = root / run.entry_for("act", 1, 1).path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    api = Api([root])
    try:
        parts, values = parse_answer(api.handle("GET", "/api/run/0/pattern?pattern=1&epoch=1").body)
        by_name = {p["name"]: p for p in parts}
        assert by_name["act"]["damaged"] == "checksum mismatch"
        assert "values" not in by_name["act"] and "offset" not in by_name["act"]
        np.testing.assert_array_equal(part_values(by_name["maps"], values), run.get("maps", 1, 1))
        assert api.handle("GET", "/api/run/0/pattern?pattern=1&epoch=7").status == 404
    finally:
        api.runs.close()


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((5, 3, 4), "<f4"), ((5,), "<f4"), ((7, 2), "<f2"), ((4, 2, 3, 2), ">f4"), ((3, 0), "<f4")],
)
def test_row_of_reads_what_the_mapping_holds(tmp_path, shape, dtype):
    values = np.random.default_rng(0).normal(size=shape).astype(dtype)
    np.save(tmp_path / "a.npy", values)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    for i in range(shape[0]):
        got = row_of(mapped, i)
        assert got.dtype == mapped.dtype and np.shape(got) == np.shape(mapped[i])
        assert np.asarray(got).tobytes() == np.asarray(mapped[i]).tobytes()
    # not a mapping (or not C-contiguous): the plain index
    plain = np.asfortranarray(values)
    for i in range(shape[0]):
        assert np.asarray(row_of(plain, i)).tobytes() == np.asarray(values[i]).tobytes()


# -- the page ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True)
        yield b
        b.close()


def api_requests(urls: list[str]) -> list[str]:
    return [
        re.sub(r"^https?://[^/]+/", "", u) for u in urls if "/api/run/" in u or "/api/layout" in u
    ]


def switch(page, pattern: int) -> None:
    page.fill("#pattern", str(pattern))
    page.dispatch_event("#pattern", "change")
    page.wait_for_function(f"() => location.hash.includes('pattern={pattern}')")
    page.wait_for_function(READY, timeout=20_000)


def hover_value(page, layer: str, y: int, x: int) -> str:
    """The readout under pixel (y, x) of a layer's canvas."""
    canvas = page.locator(f'canvas[data-layer="{layer}"]')
    size = canvas.evaluate("(c) => [c.width, c.height, c.clientWidth, c.clientHeight]")
    zoom = size[2] / size[0], size[3] / size[1]
    canvas.hover(position={"x": (x + 0.5) * zoom[0], "y": (y + 0.5) * zoom[1]})
    cell = page.locator(".cell").filter(has=canvas)
    return cell.locator(".readout").inner_text()


def test_a_switch_asks_once_and_draws_the_stored_values(browser, seed_run):
    run = open_run(seed_run)
    v = Page(browser, [seed_run])
    urls: list[str] = []
    v.page.on("request", lambda r: urls.append(r.url))
    try:
        v.open()
        # the first view: one answer with the layouts, nothing asked per layer or per shape
        first = api_requests(urls)
        assert first[0] == "api/run/0/pattern?pattern=0&layouts=1", first
        for layer in ("dense", "flatten"):
            assert_pixels(v.page, seed_run, layer, 0)
        # a moment after drawing, the next pattern is prefetched: one answer too
        v.page.wait_for_function(
            "() => performance.getEntriesByType('resource')"
            ".some((e) => e.name.endsWith('/pattern?pattern=1') && e.responseEnd > 0)"
        )
        assert api_requests(urls) == [first[0], "api/run/0/pattern?pattern=1"]
        for pattern, asks in ((2, True), (1, False)):
            urls.clear()
            before = canvas_rgb(v.page, "dense")
            switch(v.page, pattern)
            # pattern 2: one answer (its neighbours are known or past the end); pattern 1:
            # none, the prefetched answer filled every cell's cache entry
            want = [f"api/run/0/pattern?pattern={pattern}"] if asks else []
            assert api_requests(urls) == want
            for layer in ("dense", "flatten"):
                assert_pixels(v.page, seed_run, layer, pattern)
            assert not np.array_equal(before, canvas_rgb(v.page, "dense"))
            # the value under the cursor: the stored float32 (dense is (50, 75), drawn 1:1)
            stored = run.get("dense", pattern)
            for y, x in ((0, 0), (7, 42), (49, 74)):
                text = hover_value(v.page, "dense", y, x)
                match = re.fullmatch(rf"\[{y}, {x}\] = (\S+)", text)
                assert match, text
                assert_shown(match.group(1), float(stored[y, x]))
            # where the switch's time went: the app's own account, every phase counted
            timing = v.page.evaluate("window.PASSAGE.timing")
            assert timing["view"] == "pattern" and timing["pattern"] == pattern
            assert all(timing[k] >= 0 for k in PHASES), timing
            assert sum(timing[k] for k in PHASES) <= timing["total"] + 1e-6, timing
        assert api_requests(urls) == []  # nothing asked after the cached switch either
        assert v.problems == []
    finally:
        v.close()


def test_a_damaged_layer_is_drawn_damaged_and_the_others_stored(browser, tmp_path):
    root = tmp_path / "train"
    assert write_epochs(root, 0, 0).wait(60) == 0
    run = open_run(root)
    path = root / run.entry_for("maps", 1, 0).path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    v = Page(browser, [root])
    try:
        v.open("#pattern=1&epoch=0")
        damaged = v.page.locator(".cell[data-damaged]")
        assert damaged.count() == 1
        assert damaged.get_attribute("data-damaged") == "checksum mismatch"
        assert damaged.locator('canvas[data-layer="maps"]').count() == 1
        assert_pixels(v.page, root, "act", 1, epoch=0)
        # the server answered 200 with a damaged part: the console stays clean
        assert v.problems == []
    finally:
        v.close()


def test_the_static_report_switches_patterns_over_file_urls(browser, seed_run, tmp_path):
    from pipeline.viewer.static_report import build_report

    out = tmp_path / "report"
    build_report([seed_run], out, patterns="0-2", quiet=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    stored = open_run(seed_run).get("dense", 2)
    try:
        page.goto((out / "index.html").as_uri() + "#pattern=0")
        page.wait_for_function(READY, timeout=20_000)
        assert_pixels(page, seed_run, "dense", 0)
        switch(page, 2)
        assert_pixels(page, seed_run, "dense", 2)
        assert_pixels(page, seed_run, "flatten", 2)
        match = re.fullmatch(r"\[3, 5\] = (\S+)", hover_value(page, "dense", 3, 5))
        assert match
        assert_shown(match.group(1), float(stored[3, 5]))
        assert page.evaluate("window.PASSAGE.timing.pattern") == 2
    finally:
        page.close()
    assert problems == []
    assert all(u.startswith("file://") for u in requests)  # no server, no fetch
