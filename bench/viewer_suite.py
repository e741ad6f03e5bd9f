"""Viewer figures, through a real browser (Chromium driven by Playwright; the binary is the
one ``browser.find_chromium`` finds, and without one the figures are "not available" with the
reason ``browser.playwright_missing`` gives): the first pattern view drawn after opening a run
of ``sizes.viewer`` patterns (the article's model, the ``seed`` rule: three layers of 50x75,
50x50 and 50x25 values), and the time to switch pattern (p95 and p50).

The server is ``passage serve RUN --port 0`` in a child process, as a user runs it (in this
process it would share the GIL with Playwright's client, which handles every network event of
the page); the page is the packaged app. "Drawn" is the app's own hook:
``document.body.dataset.state == "ready"`` once every visible canvas is drawn. A switch sets
``#pattern`` to another pattern, spread over the whole run (so most switches read a data file
not read before: a file over 4 MiB is served first and its checksum compared in a background
thread), and is timed inside the page from the ``change`` event to the moment the state becomes
"ready" (a MutationObserver); the time to the next animation frame (when the pixels reach the
screen) is reported beside it. Where the milliseconds go is the app's own account
(``PASSAGE.timing``: controls, URL, request, waiting for the answer, layouts, decode, colour
mapping, canvas, DOM) and the answer's resource timing (queued in the browser, the server's
own time from its ``Server-Timing`` header, the rest of the round trip), medians in the note."""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.capturing.stream import capture

from .browser import find_chromium, playwright_missing
from .common import capture_config, fit_to_disk
from .figures import Figure, unavailable
from .sizes import Sizes

log = logging.getLogger(__name__)

FIRST = "viewer: first pattern view drawn after opening the run"
SWITCH = "viewer: switch pattern, p95 over {} switches"
SWITCH_P50 = "viewer: switch pattern, p50 over {} switches"
FIRST_TARGET = ("<=", 0.3)  # seconds (issue 25)
SWITCH_TARGET = ("<=", 50)  # ms, p95 (issue 25)
SWITCH_P50_TARGET = ("<=", 25)  # ms, p50 (issue 25)
URL_LINE = re.compile(r"viewer for \d+ run\(s\) at (http://\S+)")
# Functions, not expressions: Playwright evaluates an expression with eval, which the viewer's
# Content-Security-Policy (script-src 'self') refuses.
READY = "() => document.body.dataset.state === 'ready'"
SWITCH_JS = """async (p) => {
  const el = document.querySelector('#pattern');
  let readyAt = null;
  const seen = new MutationObserver(() => {
    if (readyAt === null && document.body.dataset.state === 'ready') readyAt = performance.now();
  });
  seen.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  const t0 = performance.now();
  el.value = String(p);
  el.dispatchEvent(new Event('change', { bubbles: true }));
  while (document.body.dataset.state !== 'ready') {
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  const frame = performance.now() - t0;
  seen.disconnect();
  const drawn = document.querySelectorAll('canvas[data-layer]').length;
  const split = Object.assign({}, window.PASSAGE.timing || {});
  const answer = performance.getEntriesByType('resource')
    .filter((e) => e.startTime >= t0 && e.name.includes('/pattern?pattern=' + p)).pop();
  if (answer) {
    const server = (answer.serverTiming || []).find((s) => s.name === 'slices');
    split.queued = answer.requestStart - answer.startTime;
    split.server = server ? server.duration : NaN;
    split.trip = answer.responseEnd - answer.requestStart - (server ? server.duration : 0);
  }
  performance.clearResourceTimings();
  return [(readyAt === null ? frame : readyAt - t0), frame, drawn, Number(el.value), split];
}"""
# the app's phases (PASSAGE.timing) and the answer's, in the order the note prints them
APP_PHASES = ("request", "controls", "hash", "fetch", "layout", "decode", "colour", "canvas", "dom")
ANSWER_PHASES = ("queued", "server", "trip")


def viewer_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    why = _missing()
    if why:
        log.warning("viewer: %s", why)
        return [
            unavailable(f"{FIRST}, {sizes.viewer:,} patterns", "s", FIRST_TARGET, why),
            unavailable(SWITCH.format(sizes.viewer_switches), "ms", SWITCH_TARGET, why),
            unavailable(SWITCH_P50.format(sizes.viewer_switches), "ms", SWITCH_P50_TARGET, why),
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


def _serve(run_dir: Path) -> tuple[subprocess.Popen, str]:
    """``passage serve RUN --port 0`` in a child process, and the URL it logged."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", str(run_dir), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        found = URL_LINE.search(line)
        if found:
            return proc, found.group(1)
    proc.wait(10)
    raise RuntimeError(f"passage serve exited ({proc.returncode}) without a URL: {''.join(lines)}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # Ctrl-C: serve returns normally
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _measure(run_dir: Path, n: int, layers: int, sizes: Sizes, note: str) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    server, url = _serve(run_dir)
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
                times, frames, splits = [], [], []
                for p in targets:
                    ms, frame, drawn, shown, split = page.evaluate(SWITCH_JS, int(p))
                    if drawn < layers or shown != p:
                        raise RuntimeError(f"switch to {p} drew {drawn} canvases, shows {shown}")
                    times.append(ms)
                    frames.append(frame)
                    splits.append(split)
                page.close()
            finally:
                browser.close()
    finally:
        _stop(server)
    first = float(np.median(firsts))
    p50, p95 = (float(v) for v in np.percentile(times, [50, 95]))
    f50, f95 = np.percentile(frames, [50, 95])
    split = split_text(splits)
    log.info(
        "viewer: first view %.2f s (%s), switches p50 %.1f ms p95 %.1f ms; %s",
        first,
        firsts,
        p50,
        p95,
        split,
    )
    switches = (
        f"#pattern set to patterns spread over the run, timed in the page from the change "
        f"event to 'ready' (one request: fetch of {layers} slices in one answer, canvases "
        f"drawn; a file over 4 MiB read for the first time is checksummed in the background); "
        f"to the next frame p50 {f50:.1f}, p95 {f95:.1f} ms; split (median ms): {split}; "
        f"the server: passage serve in a child process{note}"
    )
    return [
        Figure(
            f"{FIRST}, {n:,} patterns",
            None,
            first,
            "s",
            first,
            FIRST_TARGET,
            f"page.goto(url) until the app's body state is 'ready' with {layers} layer canvases "
            f"drawn, in a new page of one Chromium (headless); median of {len(firsts)}: "
            f"{', '.join(f'{s:.2f}' for s in firsts)} s; the server: passage serve in a child "
            f"process{note}",
        ),
        Figure(
            SWITCH.format(len(times)),
            None,
            p95,
            "ms",
            p95,
            SWITCH_TARGET,
            f"p50 {p50:.1f} ms, max {max(times):.1f} ms: {switches}",
        ),
        Figure(
            SWITCH_P50.format(len(times)),
            None,
            p50,
            "ms",
            p50,
            SWITCH_P50_TARGET,
            f"p95 {p95:.1f} ms: {switches}",
        ),
    ]


def split_text(splits: list[dict[str, float]]) -> str:
    """The median of each phase over the switches, in the order they happen."""

    def median(key: str) -> str:
        values = [s[key] for s in splits if isinstance(s.get(key), (int, float))]
        values = [v for v in values if np.isfinite(v)]
        return f"{float(np.median(values)):.1f}" if values else "-"

    app = ", ".join(f"{k} {median(k)}" for k in APP_PHASES)
    answer = ", ".join(f"{k} {median(k)}" for k in ANSWER_PHASES)
    return f"app: {app}; of the answer: {answer}; in all {median('total')}"


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
