"""Viewer figures, through a real browser (Chromium driven by Playwright; the binary is the
one ``browser.find_chromium`` finds, and without one both figures are "not available" with the
reason ``browser.playwright_missing`` gives): the first pattern view drawn after opening a run
of ``sizes.viewer`` patterns (the article's model, the ``seed`` rule: three layers of 50x75,
50x50 and 50x25 values), and the time to switch pattern.

The server is ``pipeline.viewer.start`` in this process (a thread); the page is the packaged
app. "Drawn" is the app's own hook: ``document.body.dataset.state == "ready"`` once every
visible canvas is drawn. A switch sets ``#pattern`` to another pattern, spread over the whole
run (so most switches read a data file not read before: a file over 4 MiB is served first and
its checksum compared in a background thread), and is timed inside the page, from the
``change`` event to "ready"."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from pipeline.capturing.stream import capture
from pipeline.viewer import start

from .browser import find_chromium, playwright_missing
from .common import capture_config, fit_to_disk
from .figures import Figure, unavailable
from .sizes import Sizes

log = logging.getLogger(__name__)

FIRST = "viewer: first pattern view drawn after opening the run"
SWITCH = "viewer: switch pattern, p95 over {} switches"
# Functions, not expressions: Playwright evaluates an expression with eval, which the viewer's
# Content-Security-Policy (script-src 'self') refuses.
READY = "() => document.body.dataset.state === 'ready'"
SWITCH_JS = """async (p) => {
  const el = document.querySelector('#pattern');
  const t0 = performance.now();
  el.value = String(p);
  el.dispatchEvent(new Event('change', { bubbles: true }));
  while (document.body.dataset.state !== 'ready') {
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  const drawn = document.querySelectorAll('canvas[data-layer]').length;
  return [performance.now() - t0, drawn, Number(el.value)];
}"""


def viewer_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    why = _missing()
    if why:
        log.warning("viewer: %s", why)
        return [
            unavailable(f"{FIRST}, {sizes.viewer:,} patterns", "s", ("<=", 1.5), why),
            unavailable(SWITCH.format(sizes.viewer_switches), "ms", ("<=", 100), why),
        ]
    n = fit_to_disk(sizes.viewer, 29_000, tmp)  # 29 KiB per pattern (3 float32 layers)
    note = "" if n == sizes.viewer else f"; reduced from {sizes.viewer:,} to fit the free disk"
    out = tmp / "viewer"
    log.info("viewer: capturing builtin:seed over random:%d (rule seed)", n)
    run = capture(capture_config(out, n, sizes.batch_size), quiet=True)
    try:
        return _measure(run.path, n, len(run.layers), sizes, note)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _missing() -> str:
    """Why the browser figures cannot be measured here ('' when they can)."""
    return playwright_missing() or ""


def _measure(run_dir: Path, n: int, layers: int, sizes: Sizes, note: str) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    server, thread, url = start([run_dir], "127.0.0.1", 0)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium())
            try:
                firsts = [_first_view(browser, url, layers) for _ in range(sizes.repeats)]
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function(READY)
                rng = np.random.default_rng(0)
                targets = rng.choice(np.arange(1, n), size=sizes.viewer_switches, replace=False)
                times = []
                for p in targets:
                    ms, drawn, shown = page.evaluate(SWITCH_JS, int(p))
                    if drawn < layers or shown != p:
                        raise RuntimeError(f"switch to {p} drew {drawn} canvases, shows {shown}")
                    times.append(ms)
                page.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    first = float(np.median(firsts))
    p50, p95 = np.percentile(times, [50, 95])
    log.info(
        "viewer: first view %.2f s (%s), switches p50 %.0f ms p95 %.0f ms", first, firsts, p50, p95
    )
    return [
        Figure(
            f"{FIRST}, {n:,} patterns",
            None,
            first,
            "s",
            first,
            ("<=", 1.5),
            f"page.goto(url) until the app's body state is 'ready' with {layers} layer canvases "
            f"drawn, in a new page of one Chromium (headless); median of {len(firsts)}: "
            f"{', '.join(f'{s:.2f}' for s in firsts)} s; the server in this process{note}",
        ),
        Figure(
            SWITCH.format(len(times)),
            None,
            float(p95),
            "ms",
            float(p95),
            ("<=", 100),
            f"p50 {p50:.0f} ms, max {max(times):.0f} ms: #pattern set to patterns spread "
            f"over the run, timed in the page from the change event to 'ready' (fetch of "
            f"{layers} slices, canvases drawn; a file over 4 MiB read for the first time is "
            f"checksummed in the background){note}",
        ),
    ]


def _first_view(browser, url: str, layers: int) -> float:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        start_time = time.perf_counter()
        page.goto(url)
        page.wait_for_function(
            "() => document.body.dataset.state === 'ready' && "
            f"document.querySelectorAll('canvas[data-layer]').length >= {layers}"
        )
        return time.perf_counter() - start_time
    finally:
        page.close()
