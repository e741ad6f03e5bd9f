"""The Unit view in Debian's Chromium (Playwright): the drawn feature visualization's canvas
pixels equal the stored image under the page's rule (image spaces: round((v - low) /
(high - low) * 255) per RGB channel, gray replicated; input space: viridis over the image's
[min, max]), ``#unit=LAYER:CHANNEL`` opens that unit, the layer page's tiles and the pattern
view's layer names link to the unit pages, the epoch strip switches epochs, no console error
or CSP violation; the same from a static report on ``file://``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from externals import need_chromium
from test_viewer_compare import CSP_LISTENER, READY, Server, canvas_pixels
from viewer_unit_helpers import CNN_LAYER, cnn_run, rgb_run, seed_run, train_run

from pipeline.store import open_run
from pipeline.viewer.colormaps import lut
from pipeline.viewer.static_report import build_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory, keras) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("unit-pages")
    return {
        "rgb": rgb_run(keras, root / "rgb"),
        "seed": seed_run(root / "seed"),
        "train": train_run(root / "train"),
        "cnn": cnn_run(root / "cnn"),
    }


def expected_pixels(f: dict) -> np.ndarray:
    """(H, W, 3) uint8: the stored image as the page must draw it."""
    x = np.asarray(f["image"], dtype=np.float64)
    if f["space"] in ("image", "pixels"):
        v = (x - f["low"]) / (f["high"] - f["low"]) * 255
        out = np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out
    lo, hi = x.min(), x.max()
    index = np.clip(np.floor((x - lo) / (hi - lo) * 255 + 0.5), 0, 255).astype(int)
    return lut("viridis")[index]


def hash_of(page) -> dict[str, str]:
    return dict(re.findall(r"([a-z]+)=([^&]*)", page.evaluate("location.hash")))


class Browser:
    def __init__(self, pw, chromium: str) -> None:
        self.browser = pw.chromium.launch(executable_path=chromium, headless=True)
        self.context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(CSP_LISTENER)
        self.problems: list[str] = []
        self.pages = []

    def page(self):
        p = self.context.new_page()
        p.on(
            "console",
            lambda m: m.type in ("error", "warning") and self.problems.append(m.text),
        )
        p.on("pageerror", lambda e: self.problems.append(str(e)))
        self.pages.append(p)
        return p

    def check_clean(self) -> None:
        violations = [v for p in self.pages for v in p.evaluate("window.cspViolations")]
        assert not violations and not self.problems, (violations, self.problems)

    def close(self) -> None:
        self.context.close()
        self.browser.close()


@pytest.fixture
def browser(runs) -> Iterator[Browser]:
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = Browser(pw, chromium)
        try:
            yield b
        finally:
            b.close()


def follow(page, act, hash_test: str = "true") -> None:
    """Run ``act`` (a click, or a goto that may change only the hash) and wait until the page has
    drawn what it leads to. The page's 'ready' mark is cleared first, so the mark of the render
    before cannot pass for the new one; ``hash_test`` is a JS expression over ``h``, the hash."""
    page.evaluate("() => { document.body.dataset.state = 'stale'; }")
    act()
    page.wait_for_function(
        f"() => {{ const h = location.hash; return {hash_test}; }}", timeout=20_000
    )
    page.wait_for_function(READY, timeout=20_000)


def open_unit(page, url: str) -> None:
    if page.url == "about:blank":
        page.goto(url)
        page.wait_for_function(READY, timeout=20_000)
    else:
        follow(page, lambda: page.goto(url))
    page.wait_for_selector("#unit-title", timeout=20_000)


def check_unit(page, run, layer: str, channel: int, epoch: int | None) -> None:
    """The unit page shows ``channel`` of ``layer``: its title, hash and exact pixels."""
    assert page.locator("#unit-title").text_content() == f"{layer} · unit {channel}"
    h = hash_of(page)
    assert h["unit"] == f"{layer}:{channel}"
    assert h.get("epoch") == (None if epoch is None else str(epoch))
    f = run.feature(layer, channel, epoch)
    got = canvas_pixels(page.locator("#unit-image"))
    assert np.array_equal(got, expected_pixels(f))


def test_unit_pages_draw_the_stored_images_and_link(runs, browser, tmp_path):
    s = Server([runs["rgb"], runs["seed"], runs["train"], runs["cnn"]])
    try:
        rgb, seed, train = (open_run(runs[k]) for k in ("rgb", "seed", "train"))
        page = browser.page()
        # the hash alone opens the unit: an RGB image space
        open_unit(page, s.url + "#unit=conv:1")
        check_unit(page, rgb, "conv", 1, None)
        assert page.locator("#tabs button.active").text_content() == "Units"
        top = rgb.top_patterns("conv", 1)
        assert page.locator(".unit-pattern").count() == int((top["index"] >= 0).sum()) == 3
        marks = page.locator("#unit-hist").get_attribute("data-marks").split(",")
        np.testing.assert_allclose([float(v) for v in marks], top["value"][:3], rtol=1e-6)
        assert page.locator("#unit-classes .unit-class").count() == 3
        page.screenshot(path=str(tmp_path / "unit.png"), full_page=True)

        # next / previous unit
        follow(page, lambda: page.click("#unit-next"), "h.startsWith('#unit=conv:2')")
        check_unit(page, rgb, "conv", 2, None)
        follow(page, lambda: page.click("#unit-prev"), "h.startsWith('#unit=conv:1')")
        check_unit(page, rgb, "conv", 1, None)

        # the layer page: a tile per visualized channel, each a link to its unit page
        follow(page, lambda: page.click("#unit-up"), "h.startsWith('#unit=conv&')")
        page.wait_for_selector("#unit-grid", timeout=20_000)
        assert hash_of(page)["unit"] == "conv"
        tiles = page.locator("#unit-grid .unit-tile")
        assert tiles.count() == 6
        assert [tiles.nth(i).get_attribute("data-channel") for i in range(6)] == list("012345")
        page.screenshot(path=str(tmp_path / "layer.png"), full_page=True)
        follow(page, lambda: tiles.nth(5).click(), "h.startsWith('#unit=conv:5')")
        check_unit(page, rgb, "conv", 5, None)
        assert "No top patterns" in page.locator(".unit-top-card").text_content()

        # the input space (builtin:seed's (50, 50)): viridis over the image's range
        open_unit(page, s.url + "#unit=my_dense:3&run=1")
        check_unit(page, seed, "my_dense", 3, None)

        # a training run: epoch 2 was not visualized, the latest before (0) is shown
        open_unit(page, s.url + "#unit=conv:2&epoch=2&run=2")
        check_unit(page, train, "conv", 2, 0)
        strip = page.locator("#unit-strip .unit-epoch")
        assert strip.count() == 2 and "active" in strip.nth(0).get_attribute("class")
        follow(page, lambda: strip.nth(1).click(), "h.includes('epoch=4')")
        check_unit(page, train, "conv", 2, 4)
        assert page.locator("#unit-classes .name").all_text_contents() == ["cat", "dog"]

        # pipeline.visualize's own output, of a nested model's layer (a '/' in its name)
        open_unit(page, s.url + f"#unit={CNN_LAYER}:3&run=3")
        cnn = open_run(runs["cnn"])
        check_unit(page, cnn, CNN_LAYER, 3, None)
        assert cnn.feature(CNN_LAYER, 3)["space"] == "image"
        assert page.locator(".unit-pattern").count() == 3

        # from the pattern view: a visualized layer's name links to its layer page
        other = browser.page()
        other.goto(s.url + "#run=0&view=pattern")
        other.wait_for_function(READY, timeout=20_000)
        links = other.locator("a.layer-link")
        assert sorted(links.all_text_contents()) == [CNN_LAYER, "conv", "conv", "dense", "my_dense"]
        follow(
            other,
            lambda: other.locator('a.layer-link:text-is("dense")').click(),
            "h.startsWith('#unit=dense')",
        )
        other.wait_for_selector("#unit-grid", timeout=20_000)
        assert hash_of(other)["unit"] == "dense"
        assert other.locator("#unit-grid .unit-tile").count() == 4
        # and the Units tab opens a layer page too
        follow(other, lambda: other.click('#tabs [data-view="pattern"]'), "!h.includes('unit=')")
        follow(
            other, lambda: other.click('#tabs [data-view="unit"]'), "h.startsWith('#unit=dense')"
        )
        other.wait_for_selector("#unit-grid", timeout=20_000)
        assert hash_of(other)["unit"] == "dense"
        browser.check_clean()
    finally:
        s.stop()


def test_static_report_shows_the_units(runs, browser, tmp_path):
    out = tmp_path / "report"
    build_report([runs["rgb"], runs["train"]], out, patterns="0-1", quiet=True)
    rgb, train = open_run(runs["rgb"]), open_run(runs["train"])
    page = browser.page()
    open_unit(page, (out / "index.html").as_uri() + "#unit=conv:3")
    check_unit(page, rgb, "conv", 3, None)
    assert page.locator(".unit-pattern").count() == 4
    open_unit(page, (out / "index.html").as_uri() + "#unit=conv:4&epoch=0&run=1")
    check_unit(page, train, "conv", 4, 0)
    follow(
        page,
        lambda: page.locator("#unit-strip .unit-epoch").nth(1).click(),
        "h.includes('epoch=4')",
    )
    check_unit(page, train, "conv", 4, 4)
    open_unit(page, (out / "index.html").as_uri() + "#unit=dense")
    assert page.locator("#unit-grid .unit-tile").count() == 4
    assert "unit pages 20 of 20" in page.locator("#report-size").text_content()
    browser.check_clean()
