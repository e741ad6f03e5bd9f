"""The viewer app in a real browser: Debian's Chromium driven by Playwright (sync API).

The server runs in a thread on 127.0.0.1 (port 0); pixels read back from the page's canvases
are compared with the stored values through the colormap LUT and the contract's index rule
(computed here in numpy, with render's own mosaic layout). Without Playwright or a Chromium binary
(``tests/externals.need_chromium``) the tests skip, and fail under PASSAGE_TEST_STRICT=1
(``.ci/run`` installs Chromium). The served pages run under the server's
Content-Security-Policy: every test also asserts that nothing broke it.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from externals import need_chromium

from pipeline.store import open_run

# predicates as functions: Playwright evaluates one once, where the page's policy (no
# 'unsafe-eval') lets it; a bare expression would be eval'ed at every poll and refused
READY = "() => document.body.dataset.state === 'ready'"

# a synthetic training store: layer "act" (6, 8), layer "maps" (3, 4, 5), 2 watched patterns
EPOCH_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pipeline.store.naming import layer_dir
    from pipeline.store.writer import RunWriter

    root, first_epoch, last_epoch, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    layers = [("act", (6, 8)), ("maps", (3, 4, 5))]
    info = {
        "mode": "train", "fingerprint": "live", "num_patterns": 2,
        "layers": [
            {"index": i, "name": n, "class": "X", "shape": list(s), "dir": layer_dir(i, n)}
            for i, (n, s) in enumerate(layers)
        ],
    }
    with RunWriter(root, info) as w:
        for epoch in range(first_epoch, last_epoch + 1):
            rng = np.random.default_rng(epoch)
            for name, shape in layers:
                w.write(name, epoch, 0, rng.normal(size=(2, *shape)).astype(np.float32))
            w.append_metrics({"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": epoch / 10})
            print(epoch, flush=True)
            if epoch < last_epoch:
                time.sleep(pause)
    """
)


def write_epochs(root: Path, first: int, last: int, pause: float = 0.0) -> subprocess.Popen:
    """A subprocess appending epochs ``first..last`` to the store at ``root`` (RunWriter)."""
    return subprocess.Popen(
        [sys.executable, "-c", EPOCH_WRITER, str(root), str(first), str(last), str(pause)],
        stdout=subprocess.PIPE,
        text=True,
    )


# -- expected pixels --------------------------------------------------------------------------
def expected_rgb(values: np.ndarray, cmap: str) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) the contract prescribes for a 2-D image of values (NaN = padding)."""
    from pipeline.viewer.colormaps import lut

    finite = values[np.isfinite(values)]
    lo, hi = float(finite.min()), float(finite.max())
    v = values.astype(np.float64)
    if hi > lo:
        index = np.clip(np.floor((v - lo) / (hi - lo) * 255 + 0.5), 0, 255)
    else:
        index = np.zeros_like(v)
    mask = np.isfinite(v)
    return lut(cmap)[np.where(mask, index, 0).astype(np.int64)], mask


def canvas_rgb(page, layer: str, run: int = 0) -> np.ndarray:
    """The RGB pixels of a layer's canvas, read back with getImageData."""
    return pixels(page.locator(f'canvas[data-layer="{layer}"][data-run="{run}"]'))


def card(page, title: str):
    """The analysis view's card titled ``title`` (a Playwright locator)."""
    head = page.locator("h3", has_text=re.compile(f"^{re.escape(title)}$"))
    return page.locator("#view-analysis .card").filter(has=head)


def pixels(canvas) -> np.ndarray:
    """The RGB pixels of a canvas (a Playwright locator), read back with getImageData."""
    got = canvas.evaluate(
        """(c) => {
            // copied 1:1 onto a canvas made for reading (no readback warning on the app's)
            const copy = document.createElement("canvas");
            copy.width = c.width;
            copy.height = c.height;
            const ctx = copy.getContext("2d", {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            return {w: c.width, h: c.height, px: Array.from(d)};
        }"""
    )
    return np.array(got["px"], np.uint8).reshape(got["h"], got["w"], 4)[..., :3]


def assert_shown(text: str, value: float) -> None:
    """``text`` is ``value`` written with 4 significant digits: off by at most half a unit
    in the 4th digit (5e-4 of the value), plus float32 rounding where the page holds float32."""
    shown = float(text)
    assert abs(shown - value) <= abs(value) * (5e-4 + 2**-23), (text, value)


def assert_pixels(page, run_path: Path, layer: str, pattern: int, epoch=None, cmap="viridis"):
    from pipeline.rendering.layout import to_image

    stored = open_run(run_path).get(layer, pattern, epoch)
    image = to_image(np.asarray(stored, np.float32))  # render's layout: the mosaic for (H, W, C)
    want, mask = expected_rgb(image, cmap)
    got = canvas_rgb(page, layer)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[mask], want[mask])


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator:
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> dict[str, Path]:
    """Two real captures: the article's model (2-D outputs, stored inputs) and a CNN (maps)."""
    from pipeline.cli import main

    root = tmp_path_factory.mktemp("viewer")
    seed, cnn = root / "seed", root / "cnn"
    common = ["capture", "-q", "--select", "all", "--keep-inputs"]
    assert (
        main([*common, "--model", "builtin:seed", "--patterns", "random:3:1", "--out", str(seed)])
        == 0
    )
    assert (
        main([*common, "--model", "builtin:cnn", "--patterns", "random:2:2", "--out", str(cnn)])
        == 0
    )
    return {"seed": seed, "cnn": cnn}


# collects Content-Security-Policy violations before any of the page's own code runs
CSP_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));
"""


class Page:
    """One server over ``runs`` and one browser page on it, collecting console problems and
    Content-Security-Policy violations."""

    def __init__(self, browser, runs: list[Path], **server_options) -> None:
        from pipeline.viewer.server import start

        self.server, self.thread, self.url = start(runs, "127.0.0.1", 0, **server_options)
        self.console: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.add_init_script(CSP_LISTENER)
        self.page.on(
            "console",
            lambda m: m.type in ("error", "warning") and self.console.append(f"{m.type}: {m.text}"),
        )
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    @property
    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and CSP violations so far."""
        violations = self.page.evaluate("window.cspViolations || []")
        return self.console + [f"csp: {v}" for v in violations]

    def open(self, hash_: str = "") -> None:
        from pipeline.viewer.server import CSP

        response = self.page.goto(f"{self.url}{hash_}")
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"] == CSP  # the page is under it
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_function(READY, timeout=20_000)

    def close(self) -> None:
        self.context.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def viewer(browser):
    opened: list[Page] = []

    def make(runs: list[Path], **server_options) -> Page:
        opened.append(Page(browser, runs, **server_options))
        return opened[-1]

    yield make
    for p in opened:
        p.close()


def change(page, selector: str, value: str) -> None:
    """Set a control's value as a user would, then wait until every canvas is drawn again."""
    page.fill(selector, value)
    page.dispatch_event(selector, "change")
    page.wait_for_function(READY, timeout=20_000)


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_run_draws_every_layer_with_the_stored_values(viewer, captured):
    v = viewer([captured["seed"], captured["cnn"]])
    v.open()
    seed, cnn = open_run(captured["seed"]), open_run(captured["cnn"])
    page = v.page
    assert page.locator('canvas[data-layer][data-run="0"]').count() == len(seed.layers)
    assert page.locator('canvas[data-layer][data-run="1"]').count() == len(cnn.layers)
    assert_pixels(page, captured["seed"], "dense", 0)  # 2-D (50, 75)
    assert_pixels(page, captured["seed"], "flatten", 0)  # a vector as a near-square image
    maps = next(r.name for r in cnn.layer_records if len(r.shape) == 3)
    got = page.evaluate(f"""document.querySelector('canvas[data-layer="{maps}"]').dataset.run""")
    assert got == "1"
    assert_pixels_run1 = canvas_rgb(page, maps, run=1)
    from pipeline.rendering.layout import to_image

    want, mask = expected_rgb(to_image(cnn.get(maps, 0)), "viridis")
    np.testing.assert_array_equal(assert_pixels_run1[mask], want[mask])  # a channel mosaic

    before = canvas_rgb(page, "dense")
    change(page, "#pattern", "2")
    assert_pixels(page, captured["seed"], "dense", 2)
    assert not np.array_equal(before, canvas_rgb(page, "dense"))
    assert "pattern=2" in page.evaluate("location.hash")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => location.hash.includes('pattern=1')")
    v.wait_ready()
    assert_pixels(page, captured["seed"], "dense", 1)

    page.select_option("#cmap", "magma")
    v.wait_ready()
    assert_pixels(page, captured["seed"], "dense", 1, cmap="magma")
    assert v.problems == []


@pytest.mark.slow
def test_hash_opens_a_pattern_and_the_other_views(viewer, captured):
    from pipeline.cli import main

    assert main(["analyze", "-q", str(captured["cnn"])]) == 0
    v = viewer([captured["cnn"]])
    v.open("#run=0&pattern=1&view=pattern")
    cnn = open_run(captured["cnn"])
    maps = next(r.name for r in cnn.layer_records if len(r.shape) == 3)
    assert_pixels(v.page, captured["cnn"], maps, 1)
    v.page.click("[data-view=analysis]")
    v.wait_ready()
    assert "view=analysis" in v.page.evaluate("location.hash")
    v.page.select_option("#analysis-layer", maps)
    v.wait_ready()
    assert_analysis_view(v.page, cnn.analysis(maps))
    v.page.click("[data-view=model]")
    v.wait_ready()
    assert_model_view(v.page, captured["cnn"])
    assert v.problems == []


def assert_analysis_view(page, stored: dict[str, np.ndarray]) -> None:
    """What the analysis view shows of a (H, W, C) layer equals the stored analysis."""
    from pipeline.rendering.layout import to_image

    # the maps: stored numbers through the colormap, laid out as a channel mosaic
    for title, key in (("mean", "mean"), ("std", "std"), ("fraction positive", "frac_positive")):
        want, mask = expected_rgb(to_image(stored[key].astype(np.float32)), "viridis")
        got = pixels(card(page, title).locator("canvas").first)
        assert got.shape == want.shape, title
        np.testing.assert_array_equal(got[mask], want[mask], err_msg=title)
    # the value under the cursor: top-left pixel of channel 0's tile, then of channel 1's
    mean = card(page, "mean")
    canvas = mean.locator("canvas").first
    size = canvas.evaluate("(c) => [c.width, c.height, c.clientWidth, c.clientHeight]")
    zoom = size[2] / size[0], size[3] / size[1]
    tile_w = stored["mean"].shape[1]
    for x, channel in ((0, 0), (tile_w + 1, 1)):  # tiles in a row, a 1-pixel gap between
        canvas.hover(position={"x": (x + 0.5) * zoom[0], "y": 0.5 * zoom[1]})
        text = mean.locator(".readout").inner_text()
        match = re.fullmatch(rf"\[0, 0, {channel}\] = (\S+)", text)
        assert match, text
        assert_shown(match.group(1), float(stored["mean"][0, 0, channel]))
    # the histogram: each bar's height is log1p(count) / log1p(top) of 120 CSS pixels
    counts = np.asarray(stored["hist_counts"], np.int64)
    hist = pixels(card(page, "histogram (all values)").locator("canvas"))
    assert hist.shape == (150, 300, 3)  # 300 x 150 CSS pixels, device pixel ratio 1
    blue = np.all(hist == (0x2F, 0x6F, 0xDB), axis=-1)
    width = (300 - 20) / counts.size
    for i, count in enumerate(counts):
        column = int(10 + i * width + max(1, width - 1) / 2)  # inside the bar, never its edge
        height = np.log1p(count) / np.log1p(max(1, counts.max())) * (150 - 30)
        filled = int(blue[: 150 - 18, column].sum())  # whole pixels; the top one is blended
        assert np.floor(height) <= filled <= np.ceil(height), (i, count, filled, height)
    # the units: their number, which are dead, each one's mean
    dead = np.ravel(stored["dead"]).astype(bool)
    units = card(page, f"units ({dead.size}, {int(dead.sum())} dead)")
    titles = units.locator("a.unit").evaluate_all("(links) => links.map((a) => a.title)")
    assert len(titles) == dead.size
    for c, title in enumerate(titles):
        match = re.fullmatch(rf"unit {c}: mean ([^,]+)(, dead \(never positive\))?", title)
        assert match, title
        assert_shown(match.group(1), float(stored["channel_mean"][c]))
        assert bool(match.group(2)) == dead[c]
    # unit 0 (the default): its top patterns and their values, best first
    unit = card(page, "unit 0" + (" · dead" if dead[0] else ""))
    captions = unit.locator(".thumb span").all_inner_texts()
    top = [
        (int(i), float(x))
        for i, x in zip(stored["top_index"][0], stored["top_value"][0], strict=True)
    ]
    top = [(i, x) for i, x in top if i >= 0]
    assert len(captions) == len(top) > 0
    for text, (index, value) in zip(captions, top, strict=True):
        match = re.fullmatch(r"#(\d+) · (\S+)", text)
        assert match and int(match.group(1)) == index, text
        assert_shown(match.group(2), value)


def assert_model_view(page, run_path: Path) -> None:
    """The model view's table lists run.json's layers (name, class, shape) in order, each with
    every pattern captured, and its picture is the run's model.png."""
    info = json.loads((run_path / "run.json").read_text())
    text = page.inner_text("#view-model pre")
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if re.match(r"layer\s+class\s+shape", line))
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[head + 1 :] if line.strip()]
    layer_rows = [r for r in rows if not r[0].startswith("input:")]
    want = [(rec["name"], rec["class"], str(tuple(rec["shape"]))) for rec in info["layers"]]
    assert [tuple(r[:3]) for r in layer_rows] == want
    assert {r[3] for r in layer_rows} == {str(info["num_patterns"])}
    assert f"patterns: {info['num_patterns']} (" in text
    png = (run_path / "model.png").read_bytes()
    size = struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height
    shown = page.evaluate(
        "[document.querySelector('#view-model img').naturalWidth,"
        " document.querySelector('#view-model img').naturalHeight]"
    )
    assert tuple(shown) == size


def test_epoch_slider_changes_the_pixels(viewer, tmp_path):
    root = tmp_path / "train"
    assert write_epochs(root, 0, 2).wait(60) == 0
    v = viewer([root])
    v.open("#pattern=1&epoch=0")
    page = v.page
    assert page.is_visible("#epoch")
    assert page.get_attribute("#epoch", "max") == "2"
    assert page.locator("canvas[data-layer]").count() == 2
    assert page.is_visible("canvas#metrics")
    assert_pixels(page, root, "act", 1, epoch=0)
    assert_pixels(page, root, "maps", 1, epoch=0)
    page.fill("#epoch", "2")
    page.wait_for_function("() => location.hash.includes('epoch=2')")
    v.wait_ready()
    assert_pixels(page, root, "act", 1, epoch=2)
    assert page.evaluate("document.querySelector('#metrics').dataset.epoch") == "2"
    assert v.problems == []


def test_a_live_run_shows_new_epochs_without_reload(viewer, tmp_path):
    root = tmp_path / "live"
    assert write_epochs(root, 0, 0).wait(60) == 0
    v = viewer([root])
    v.open()
    page = v.page
    assert page.get_attribute("#epoch", "max") == "0"
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    writer = write_epochs(root, 1, 3, pause=0.5)
    try:
        page.wait_for_function(
            "() => document.querySelector('#epoch').max === '3'", timeout=20_000, polling=100
        )
    finally:
        assert writer.wait(60) == 0
    v.wait_ready()
    assert page.evaluate("window.loadedOnce") is True
    # the slider was at the last epoch, so it follows the run
    page.wait_for_function("() => location.hash.includes('epoch=3')", timeout=10_000)
    v.wait_ready()
    assert_pixels(page, root, "act", 0, epoch=3)
    assert v.problems == []


def test_static_report_from_file_url(browser, tmp_path):
    from pipeline.viewer.static_report import build_report

    root = tmp_path / "train"
    assert write_epochs(root, 0, 1).wait(60) == 0
    out = tmp_path / "report"
    build_report([root], out, patterns="0-1", quiet=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto((out / "index.html").as_uri() + "#pattern=1&epoch=0")
        page.wait_for_function(READY, timeout=20_000)
        assert page.locator("canvas[data-layer]").count() == 2
        assert_pixels(page, root, "act", 1, epoch=0)
        assert_pixels(page, root, "maps", 1, epoch=0)
        page.fill("#epoch", "1")
        page.wait_for_function("() => location.hash.includes('epoch=1')")
        page.wait_for_function(READY, timeout=20_000)
        assert_pixels(page, root, "act", 1, epoch=1)
        assert page.is_visible("#report-size")
    finally:
        page.close()
    assert problems == []
    assert all(u.startswith("file://") for u in requests)


def test_the_policy_refuses_inline_script_and_framing(viewer, browser, tmp_path):
    root = tmp_path / "train"
    assert write_epochs(root, 0, 0).wait(60) == 0
    v = viewer([root])
    v.open()
    assert v.problems == []
    # what an injected <script> would do: refused, and the refusal is seen
    ran = v.page.evaluate(
        """() => {
            const s = document.createElement("script");
            s.textContent = "window.injected = true";
            document.body.append(s);
            return window.injected === true;
        }"""
    )
    assert ran is False
    v.page.wait_for_function("() => window.cspViolations.length > 0", timeout=10_000)
    assert any(p.startswith("csp: script-src") for p in v.problems), v.problems
    # another page cannot frame the viewer (clickjacking)
    other = browser.new_page()
    try:
        other.set_content(f'<iframe src="{v.url}"></iframe>')
        frame = other.frames[1]
        frame.wait_for_load_state()
        assert not frame.url.startswith(v.url)
        assert frame.evaluate("() => document.body && document.body.dataset.state") is None
    finally:
        other.close()


def test_a_token_url_opens_the_app_and_its_cookie_lets_it_in_later(viewer, browser, tmp_path):
    root = tmp_path / "train"
    assert write_epochs(root, 0, 1).wait(60) == 0
    v = viewer([root], token="k" * 10 + "-token_0.~")
    assert v.url == f"{v.server.url}?token={v.server.token}"
    v.open("#pattern=1&epoch=1")  # every request after the page's own carries the cookie
    assert_pixels(v.page, root, "act", 1, epoch=1)
    assert v.page.evaluate("() => document.cookie") == ""  # HttpOnly: scripts never see it
    v.page.goto(v.server.url + "#pattern=0&epoch=0")  # no token in the URL: the cookie
    v.wait_ready()
    assert_pixels(v.page, root, "maps", 0, epoch=0)
    assert v.problems == []
    stranger = browser.new_context()  # no cookie, no token
    try:
        page = stranger.new_page()
        response = page.goto(v.server.url)
        assert response is not None and response.status == 401
        assert "token" in response.json()["error"]
    finally:
        stranger.close()
