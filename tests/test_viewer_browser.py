"""The viewer app in a real browser: Debian's Chromium driven by Playwright (sync API).

The server runs in a thread on 127.0.0.1 (port 0); pixels read back from the page's canvases
are compared with the stored values through the colormap LUT and the contract's index rule
(computed here in numpy, with render's own mosaic layout). Skipped only where neither
Playwright nor a chromium binary exists (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.store import open_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - CI installs it (dev extra)
    sync_playwright = None

if sync_playwright is None and not Path(CHROMIUM).exists():
    pytest.skip("neither Playwright nor a chromium binary is installed", allow_module_level=True)

READY = "document.body.dataset.state === 'ready'"

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
    got = page.evaluate(
        """([layer, run]) => {
            const c = document.querySelector(`canvas[data-layer="${layer}"][data-run="${run}"]`);
            // copied 1:1 onto a canvas made for reading (no readback warning on the app's)
            const copy = document.createElement("canvas");
            copy.width = c.width;
            copy.height = c.height;
            const ctx = copy.getContext("2d", {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            return {w: c.width, h: c.height, px: Array.from(d)};
        }""",
        [layer, run],
    )
    return np.array(got["px"], np.uint8).reshape(got["h"], got["w"], 4)[..., :3]


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
    if sync_playwright is None:
        pytest.skip("Playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium binary (looked for {CHROMIUM}); apt-get install chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
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


class Page:
    """One server over ``runs`` and one browser page on it, collecting console problems."""

    def __init__(self, browser, runs: list[Path]) -> None:
        from pipeline.viewer.server import start

        self.server, self.thread, self.url = start(runs, "127.0.0.1", 0)
        self.problems: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.on(
            "console",
            lambda m: (
                m.type in ("error", "warning") and self.problems.append(f"{m.type}: {m.text}")
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))

    def open(self, hash_: str = "") -> None:
        self.page.goto(f"{self.url}/{hash_}")
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_function(READY, timeout=20_000)

    def close(self) -> None:
        self.page.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def viewer(browser):
    opened: list[Page] = []

    def make(runs: list[Path]) -> Page:
        opened.append(Page(browser, runs))
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
    page.wait_for_function("location.hash.includes('pattern=1')")
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
    assert v.page.locator("#view-analysis .unit").count() > 0
    assert "view=analysis" in v.page.evaluate("location.hash")
    v.page.click("[data-view=model]")
    v.wait_ready()
    assert maps in v.page.inner_text("#view-model pre")  # the `passage info` table
    assert v.page.evaluate("document.querySelector('#view-model img').naturalWidth") > 0
    assert v.problems == []


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
    page.wait_for_function("location.hash.includes('epoch=2')")
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
            "document.querySelector('#epoch').max === '3'", timeout=20_000, polling=100
        )
    finally:
        assert writer.wait(60) == 0
    v.wait_ready()
    assert page.evaluate("window.loadedOnce") is True
    # the slider was at the last epoch, so it follows the run
    page.wait_for_function("location.hash.includes('epoch=3')", timeout=10_000)
    v.wait_ready()
    assert_pixels(page, root, "act", 0, epoch=3)
    assert v.problems == []


def test_static_report_from_file_url(browser, tmp_path):
    from pipeline.viewer.report import build_report

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
        page.wait_for_function("location.hash.includes('epoch=1')")
        page.wait_for_function(READY, timeout=20_000)
        assert_pixels(page, root, "act", 1, epoch=1)
        assert page.is_visible("#report-size")
    finally:
        page.close()
    assert problems == []
    assert all(u.startswith("file://") for u in requests)
