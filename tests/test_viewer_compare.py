"""The viewer's Compare view: its API on a real server (127.0.0.1, real sockets) over runs
written through the store with comparisons written by ``compare_files.write_comparison``, and
the page in Debian's Chromium (Playwright): the layer profile's pixels, the layers x epochs
heatmap's clicks, and the URL that restores them.

The comparisons' arrays are synthetic but consistent (``score`` is the mean of ``scores``,
``best_layer`` its argmax); what the API answers is compared with ``Run.comparison``, and its
RDMs with an independent computation (scipy's ``cdist`` and ``rankdata`` on the stored
activations in the comparison's condition order).
"""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from analysis_helpers import write_run
from externals import need_chromium
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from pipeline.rendering.compare.rdm_order import downsample, label_order, rank_transform
from pipeline.store import compare_files, open_run
from pipeline.viewer import start
from pipeline.viewer.colormaps import lut
from pipeline.viewer.server import CSP

N = 14  # patterns of the small runs
SHAPES = {"conv": (3, 4, 2), "dense": (6,), "out": (3,)}
EPOCHS = [0, 2, 4]
# the comparison's conditions: a subset of the run's patterns, out of order
CONDITIONS = [5, 0, 3, 11, 7, 2, 9, 12, 1, 8]
LABELS = [1, 0, 1, 2, 0, 2, 1, 0, 2, 1]
REFS = ("subject-a", "subject-b", "subject-c")
BIG = 300  # patterns of the run whose RDM is block-averaged to 256 x 256


def symmetric(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.random((n, n))
    a = a + a.T
    np.fill_diagonal(a, 0.0)
    return a


def comparison_arrays(rng: np.random.Generator, layers: list[str], epochs: list[int] | None):
    """Consistent synthetic results: score = mean of scores, ci around it, best = argmax."""
    lead = (len(epochs),) if epochs else ()
    scores = rng.uniform(-0.1, 0.6, size=(*lead, len(layers), len(REFS)))
    score = scores.mean(axis=-1)
    score[..., 0] = np.maximum(score[..., 0], 0.05)  # layer 0 positive
    best = np.argmax(score, axis=-1)
    ci = np.stack([score - 0.08, score + 0.06], axis=-1)
    names = np.asarray(layers)
    arrays = {
        "layers": names,
        "references": np.asarray(REFS),
        "method": np.asarray("tau-a"),
        "distance": np.asarray("correlation"),
        "scores": scores,
        "score": score,
        "noise_ceiling": np.asarray([0.45, 0.62]),
        "ci": ci,
        "best_layer": names[best],
        "best_layer_p": rng.uniform(0.5, 1.0, size=lead),
    }
    if epochs:
        arrays["epochs"] = np.asarray(epochs)
    return arrays


def info(conditions: list[int], labels: list[int] | None) -> dict:
    return {
        "name": "v1",
        "sources": ["/data/brain/v1.mat"],
        "conditions": conditions,
        "labels": labels,
        "bootstrap": 100,
        "seed": 0,
        "region": None,
        "kind": "rsa",
    }


def activations(seed: int, n: int, epochs: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lead = (epochs, n) if epochs else (n,)
    return {k: rng.normal(size=lead + s).astype("float32") for k, s in SHAPES.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(7)
    batch = write_run(root / "batch", activations(1, N), batch=4)
    refs = np.stack([symmetric(rng, len(CONDITIONS)) for _ in REFS])
    refs[1, 2, 5] = refs[1, 5, 2] = np.nan  # a missing pair in one reference
    layers = list(SHAPES)
    compare_files.write_comparison(
        batch, "v1", comparison_arrays(rng, layers, None), refs, info(CONDITIONS, LABELS)
    )
    train = write_run(root / "train", activations(2, N, len(EPOCHS)), batch=5, epochs=EPOCHS)
    compare_files.write_comparison(
        train, "v1", comparison_arrays(rng, layers, EPOCHS), refs, info(CONDITIONS, None)
    )
    # a second region makes a regions x layers matrix
    one = comparison_arrays(rng, layers, EPOCHS)
    one.update(references=np.asarray(REFS[:1]), noise_ceiling=np.asarray([np.nan, np.nan]))
    one["scores"] = one["score"][..., None]
    compare_files.write_comparison(train, "it", one, refs[:1], info(CONDITIONS, None))
    scores = rng.uniform(0, 0.5, size=(len(EPOCHS), 2, len(layers)))
    compare_files.write_regions(
        train,
        {
            "regions": np.asarray(["v1", "it"]),
            "layers": np.asarray(layers),
            "epochs": np.asarray(EPOCHS),
            "scores": scores,
            "ci": np.stack([scores - 0.1, scores + 0.1], axis=-1),
            "best_layer": np.asarray(layers)[np.argmax(scores, axis=-1)],
            "best_layer_p": rng.uniform(0.4, 1, size=(len(EPOCHS), 2)),
            "named_layer": np.asarray(["", "out"]),
            "agrees": np.asarray([-1, 0], dtype=np.int8),
        },
    )
    big = write_run(root / "big", {"dense": rng.normal(size=(BIG, 5)).astype("float32")}, batch=64)
    big_refs = symmetric(rng, BIG)[None]
    arrays = comparison_arrays(rng, ["dense"], None)
    arrays["references"] = np.asarray(["one"])
    arrays["scores"] = arrays["scores"][:, :1]
    arrays["noise_ceiling"] = np.asarray([np.nan, np.nan])
    compare_files.write_comparison(
        big, "all", arrays, big_refs, info(list(range(BIG)), [i % 3 for i in range(BIG)])
    )
    return {"batch": batch, "train": train, "big": big}


class Server:
    """A viewer on 127.0.0.1 (free port) and ``get`` over real sockets."""

    def __init__(self, paths: list[Path]) -> None:
        self.server, self.thread, self.url = start(paths, "127.0.0.1", 0)
        self.port = self.server.server_address[1]

    def get(self, target: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", target)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def json(self, target: str, status: int = 200):
        got, headers, body = self.get(target)
        assert got == status, (target, got, body[:300])
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        return orjson.loads(body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def server(runs) -> Iterator[Server]:
    s = Server([runs["batch"], runs["train"], runs["big"]])
    yield s
    s.stop()


def as_json(value):
    """A value as the API writes it (NaN -> None, arrays -> lists)."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


def decoded(payload: dict) -> np.ndarray:
    """The (size, size) ranks an RDM answer holds; NaN where its byte says NaN."""
    size = payload["size"]
    codes = np.frombuffer(base64.b64decode(payload["codes"]), np.uint8).reshape(size, size)
    return np.where(codes == payload["nan"], np.nan, codes / payload["scale"])


def ranks(rdm: np.ndarray) -> np.ndarray:
    """Independent oracle of the rank transform: scipy's average ranks of the finite upper
    triangle, scaled to [0, 1], mirrored; NaN stays NaN, zero diagonal."""
    n = rdm.shape[0]
    rows, cols = np.triu_indices(n, 1)
    values = rdm[rows, cols]
    finite = np.isfinite(values)
    out = np.zeros((n, n))
    r = np.full(values.shape, np.nan)
    r[finite] = (rankdata(values[finite]) - 1) / (finite.sum() - 1)
    out[rows, cols] = r
    out[cols, rows] = r
    return out


# -- API ----------------------------------------------------------------------------------------
def test_list_and_comparison_equal_what_the_run_holds(server, runs):
    assert server.json("/api/run/0/compare") == {"comparisons": ["v1"], "regions": False}
    assert server.json("/api/run/1/compare") == {"comparisons": ["it", "v1"], "regions": True}
    for run_id, key in ((0, "batch"), (1, "train")):
        run = open_run(runs[key])
        got = server.json(f"/api/run/{run_id}/compare/v1")
        stored = run.comparison("v1")
        assert set(stored) <= set(got)
        for k, v in stored.items():
            assert got[k] == as_json(v), k
        assert got["info"]["conditions"] == len(CONDITIONS)
        assert got["info"]["sources"] == ["v1.mat"]  # a file name, not the user's path
        score = np.asarray(stored["score"])
        assert got["score_range"] == [score.min(), score.max()]
    got = server.json("/api/run/1/compare/v1")
    assert got["epochs"] == EPOCHS and np.asarray(got["ci"]).shape == (3, 3, 2)
    assert "epochs" not in server.json("/api/run/0/compare/v1")
    big = server.json("/api/run/2/compare/all")
    assert big["noise_ceiling"] == [None, None]  # NaN (one reference) as null


def test_regions_equal_what_the_run_holds(server, runs):
    stored = open_run(runs["train"]).regions()
    got = server.json("/api/run/1/regions")
    assert set(got) == set(stored)
    for k, v in stored.items():
        assert got[k] == as_json(v), k
    assert "no regions comparison" in server.json("/api/run/0/regions", 404)["error"]


@pytest.mark.parametrize("key, run_id, epoch", [("batch", 0, None), ("train", 1, 2)])
def test_layer_rdm_is_the_ranked_rdm_of_the_stored_activations(server, runs, key, run_id, epoch):
    run = open_run(runs[key])
    labels = LABELS if key == "batch" else None
    order, groups = label_order(None if labels is None else np.asarray(labels), len(CONDITIONS))
    for layer in SHAPES:
        target = f"/api/run/{run_id}/compare/v1/rdm?layer={layer}"
        got = server.json(target + ("" if epoch is None else f"&epoch={epoch}"))
        assert got["size"] == got["conditions"] == len(CONDITIONS)
        assert got["layer"] == layer and got["epoch"] == epoch
        assert got["groups"] == [list(g) for g in groups]
        # oracle: scipy on the stored activations, in the comparison's condition order
        x = np.stack([run.get(layer, p, epoch).reshape(-1) for p in CONDITIONS]).astype(np.float64)
        want = ranks(cdist(x, x, "correlation"))[np.ix_(order, order)]
        # one byte per entry: round(rank * 254), so within half a step
        np.testing.assert_allclose(decoded(got), want, rtol=0, atol=0.5 / 254 + 1e-12)
        # and exactly the bytes of rank_transform(run.rdm(...)) in that order
        pats = np.unique(CONDITIONS)
        at = np.searchsorted(pats, CONDITIONS)
        rdm = run.rdm(layer, "correlation", epoch, patterns=pats)[np.ix_(at, at)]
        exact = rank_transform(rdm)[np.ix_(order, order)]
        assert np.array_equal(decoded(got), np.rint(exact * 254) / 254)
    if epoch is not None:  # no epoch: the last one, whose RDM differs from epoch 2's
        target = f"/api/run/{run_id}/compare/v1/rdm?layer=dense"
        last = server.json(target)
        assert last == server.json(f"{target}&epoch={EPOCHS[-1]}") and last["epoch"] == EPOCHS[-1]
        assert last["codes"] != server.json(f"{target}&epoch={epoch}")["codes"]


def test_reference_rdms_mean_and_each(server, runs):
    refs = np.asarray(compare_files.read_references(runs["batch"], "v1"))
    order, _ = label_order(np.asarray(LABELS), len(CONDITIONS))
    for which, want in (("mean", np.nanmean(refs, axis=0)), ("1", refs[1])):
        got = server.json(f"/api/run/0/compare/v1/rdm?reference={which}")
        expected = ranks(want)[np.ix_(order, order)]
        np.testing.assert_allclose(decoded(got), expected, rtol=0, atol=0.5 / 254 + 1e-12)
    # the NaN pair of reference 1 is NaN in its answer, at its grouped place
    one = decoded(server.json("/api/run/0/compare/v1/rdm?reference=1"))
    pos = np.argsort(order)
    assert np.isnan(one[pos[2], pos[5]]) and np.isnan(one[pos[5], pos[2]])
    assert np.isnan(one).sum() == 2


def test_a_large_rdm_is_block_averaged_to_256(server, runs):
    run = open_run(runs["big"])
    got = server.json("/api/run/2/compare/all/rdm?layer=dense")
    assert got["size"] == 256 and got["conditions"] == BIG
    assert len(base64.b64decode(got["codes"])) == 256 * 256
    labels = np.arange(BIG) % 3
    order, groups = label_order(labels, BIG)
    assert got["groups"] == [list(g) for g in groups] and len(groups) == 3
    want = downsample(rank_transform(run.rdm("dense", "correlation"))[np.ix_(order, order)], 256)
    assert np.array_equal(decoded(got), np.rint(want * 254) / 254)


@pytest.mark.parametrize(
    "target, status, words",
    [
        ("/api/run/0/compare/nope", 404, "no comparison 'nope'"),
        ("/api/run/0/compare/grams", 404, "its comparisons: v1"),
        ("/api/run/0/compare/..%2f..", 404, "no such page"),
        ("/api/run/0/compare/v1/rdm", 400, "layer=NAME"),
        ("/api/run/0/compare/v1/rdm?layer=dense&reference=mean", 400, "one of"),
        ("/api/run/0/compare/v1/rdm?layer=nothing", 404, "its layers: conv, dense, out"),
        ("/api/run/0/compare/v1/rdm?layer=dense&epoch=1", 400, "batch run"),
        ("/api/run/1/compare/v1/rdm?layer=dense&epoch=3", 404, "its epochs: 0, 2, 4"),
        ("/api/run/1/compare/v1/rdm?layer=dense&epoch=x", 400, "must be an integer"),
        ("/api/run/1/compare/v1/rdm?layer=dense&layer=out", 400, "given 2 times"),
        ("/api/run/0/compare/v1/rdm?reference=3", 404, "out of range"),
        ("/api/run/0/compare/v1/rdm?reference=-1", 404, "out of range"),
        ("/api/run/0/compare/v1/rdm?reference=all", 400, "must be an integer"),
        ("/api/run/0/compare/v1/rdm?reference=mean&epoch=2", 400, "no epoch"),
        ("/api/run/7/compare", 404, "run 7 is not served"),
        ("/api/run/0/compare/v1/other", 404, "no such page"),
    ],
)
def test_bad_requests_get_a_one_line_json_error(server, target, status, words):
    body = server.json(target, status)
    message = body["error"]
    assert words in message, message
    assert "\n" not in message and "Traceback" not in message


def test_a_damaged_comparison_answers_json_not_a_traceback(tmp_path, runs):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(runs["batch"], copy)
    (copy / "compare" / "v1" / "info.json").write_bytes(b"{not json")
    s = Server([copy])
    try:
        body = s.json("/api/run/0/compare/v1/rdm?layer=dense", 422)
        assert "info.json is damaged" in body["error"] and "Traceback" not in body["error"]
    finally:
        s.stop()


# -- the page -----------------------------------------------------------------------------------
READY = "() => document.body.dataset.state === 'ready'"
CSP_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));
"""


def canvas_pixels(locator) -> np.ndarray:
    got = locator.evaluate(
        """(c) => {
            const copy = document.createElement("canvas");
            copy.width = c.width;
            copy.height = c.height;
            const ctx = copy.getContext("2d", {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let text = "";  // base64: a list of numbers this long is slow to hand over
            for (let i = 0; i < d.length; i += 8192)
                text += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
            return {w: c.width, h: c.height, b64: btoa(text)};
        }"""
    )
    px = np.frombuffer(base64.b64decode(got["b64"]), np.uint8)
    return px.reshape(got["h"], got["w"], 4)[..., :3]


def hash_of(page) -> dict[str, str]:
    return dict(re.findall(r"([a-z]+)=([^&]*)", page.evaluate("location.hash")))


def check_profile(page, score: np.ndarray, best: int) -> None:
    """Every layer's bar spans y(0)..y(score) in its column; the best one in the accent color."""
    canvas = page.locator("#compare-profile")
    px = canvas_pixels(canvas)
    left, top, width, height = (float(v) for v in canvas.get_attribute("data-plot").split(","))
    lo, hi = float(canvas.get_attribute("data-lo")), float(canvas.get_attribute("data-hi"))
    bar = int(canvas.get_attribute("data-bar"))
    assert lo <= min(0.0, score.min()) and hi >= score.max()

    def y(v: float) -> int:
        return round(top + (hi - v) / (hi - lo) * height)

    slot = width / len(score)
    for i, v in enumerate(score):
        x = round(left + (i + 0.5) * slot) - bar // 4  # beside the interval's whisker
        column = px[:, x]
        color = (47, 111, 219) if i == best else (159, 179, 209)
        painted = np.flatnonzero(np.all(column == color, axis=1))
        assert painted.size > 0, f"no bar drawn for layer {i}"
        a, b = sorted((y(0.0), y(float(v))))
        # the bar fills its span (the whisker's caps may cross one or two rows of it)
        assert abs(painted.min() - a) <= 1 and abs(painted.max() + 1 - b) <= 1, (i, a, b)
        assert painted.size >= (b - a) - 4


def test_compare_view_draws_links_and_restores(runs, tmp_path):
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    s = Server([runs["train"], runs["batch"]])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(CSP_LISTENER)
                problems: list[str] = []

                def watch(p):
                    p.on(
                        "console",
                        lambda m: m.type in ("error", "warning") and problems.append(m.text),
                    )
                    p.on("pageerror", lambda e: problems.append(str(e)))

                context.on("page", watch)
                page = context.new_page()
                response = page.goto(s.url)
                assert response is not None and response.headers["content-security-policy"] == CSP
                page.wait_for_function(READY, timeout=20_000)
                page.click('#tabs [data-view="compare"]')
                page.wait_for_selector("#compare-profile", timeout=20_000)
                page.wait_for_function(READY, timeout=20_000)
                stored = open_run(runs["train"]).comparison("it")  # "it" sorts first
                assert page.locator("#compare-select").input_value() == "0/it"
                last = len(EPOCHS) - 1
                score = np.asarray(stored["score"])[last]
                best = stored["layers"].index(stored["best_layer"][last])
                assert int(np.argmax(score)) == best
                check_profile(page, score, best)
                h = hash_of(page)
                assert h["view"] == "compare" and h["compare"] == "it"
                assert h["layer"] == stored["best_layer"][last] and h["epoch"] == str(EPOCHS[-1])
                assert page.locator("#compare-layer").count() == 1
                assert page.locator("#compare-ref").count() == 1
                assert page.locator("#compare-regions tr").count() == 3  # head + 2 regions
                page.screenshot(path=str(tmp_path / "compare_training.png"), full_page=True)

                # the training run's other comparison: its own best layer
                page.select_option("#compare-select", "0/v1")
                page.wait_for_function("() => location.hash.includes('compare=v1')", timeout=20_000)
                page.wait_for_function(READY, timeout=20_000)
                stored = open_run(runs["train"]).comparison("v1")
                assert hash_of(page)["layer"] == stored["best_layer"][last]
                check_profile(
                    page,
                    np.asarray(stored["score"])[last],
                    stored["layers"].index(stored["best_layer"][last]),
                )
                # each heatmap cell is the score's color (viridis over the scores' range)
                heat = page.locator("#compare-epochs")
                gx, gy, cw, ch = (int(v) for v in heat.get_attribute("data-grid").split(","))
                heat_px = canvas_pixels(heat)
                all_scores = np.asarray(stored["score"])
                lo, hi = all_scores.min(), all_scores.max()
                for e in range(len(EPOCHS)):
                    for layer_i in range(len(SHAPES)):
                        index = int(np.floor((all_scores[e, layer_i] - lo) / (hi - lo) * 255 + 0.5))
                        got = heat_px[gy + layer_i * ch + ch // 2, gx + e * cw + cw // 2]
                        np.testing.assert_array_equal(got, lut("viridis")[index])

                # click the heatmap cell (layer "conv", epoch 2)
                box = heat.bounding_box()
                scale = box["width"] / float(heat.evaluate("c => c.width"))
                before = page.locator("#compare-layer").evaluate("c => c.toDataURL()")
                heat.click(position={"x": (gx + 1.5 * cw) * scale, "y": (gy + 0.5 * ch) * scale})
                page.wait_for_function(
                    "() => location.hash.includes('epoch=2') && location.hash.includes('layer=conv')",
                    timeout=20_000,
                )
                page.wait_for_function(READY, timeout=20_000)
                h = hash_of(page)
                assert h["layer"] == "conv" and h["epoch"] == "2" and h["compare"] == "v1"
                after = page.locator("#compare-layer").evaluate("c => c.toDataURL()")
                assert after != before  # the layer's RDM at that epoch
                score2 = np.asarray(stored["score"])[1]
                check_profile(page, score2, stored["layers"].index(stored["best_layer"][1]))
                url = page.url
                profile = canvas_pixels(page.locator("#compare-profile"))
                layer_rdm = canvas_pixels(page.locator("#compare-layer"))

                # the URL alone restores the view, the comparison, the layer and the epoch
                other = context.new_page()
                other.goto(url)
                other.wait_for_selector("#compare-profile", timeout=20_000)
                other.wait_for_function(READY, timeout=20_000)
                assert hash_of(other) == hash_of(page)
                assert other.locator("#compare-select").input_value() == "0/v1"
                assert np.array_equal(canvas_pixels(other.locator("#compare-profile")), profile)
                assert np.array_equal(canvas_pixels(other.locator("#compare-layer")), layer_rdm)

                # another comparison: the batch run's (no heatmap)
                other.select_option("#compare-select", "1/v1")
                other.wait_for_function("() => location.hash.includes('run=1')", timeout=20_000)
                other.wait_for_function(READY, timeout=20_000)
                other.wait_for_selector("#compare-profile", timeout=20_000)
                assert other.locator("#compare-epochs").count() == 0
                batch = open_run(runs["batch"]).comparison("v1")
                check_profile(
                    other,
                    np.asarray(batch["score"]),
                    batch["layers"].index(batch["best_layer"]),
                )
                other.screenshot(path=str(tmp_path / "compare_batch.png"), full_page=True)
                violations = page.evaluate("window.cspViolations") + other.evaluate(
                    "window.cspViolations"
                )
                assert not violations and not problems, (violations, problems)
                context.close()
            finally:
                browser.close()
    finally:
        s.stop()
