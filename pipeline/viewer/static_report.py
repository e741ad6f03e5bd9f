"""``passage report RUN [RUN...] --out DIR``: the viewer's app as a static folder that opens
from ``file://`` with no server (docs/viewer.md, "Static report").

Browsers refuse ``fetch`` on ``file://`` but run ``<script src>``: every payload the server
would answer becomes a small script calling ``PASSAGE.put(key, payload)``, and
``data/index.js`` sets ``window.PASSAGE_STATIC`` (the runs, colormaps, exported patterns,
size, and the layout of every shape the page draws, as ``/api/layout`` answers it). One file
per (run, layer, epoch, pattern) with the float32 values in base64; the size is bounded
(``max_mb``) and checked before anything is written.
"""

from __future__ import annotations

import base64
import bisect
import logging
import math
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
from tqdm import tqdm

from ..errors import ConfigError, StoreError
from ..rendering.layout import parse_indices
from ..store import Run
from ..store.atomic import atomic_write_bytes
from .api import Api, Response
from .static_units import UnitsWritten, write_units

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_PATTERNS = "0-99"
DEFAULT_MAX_MB = 200.0
INDEX_SCRIPT = '<script src="data/index.js"></script>\n'
APP_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"assets/app\.js\"", re.I)
PUT_OVERHEAD = 200  # most bytes of a data script around its base64 and key (shape, 4 numbers)
MB = 1_000_000
SAFE_NAME = re.compile(r"[\w.-]+(?<!\.\.)")  # an input name usable as one file-name part


@dataclass
class ReportSummary:
    """What ``build_report`` wrote: ``files`` data scripts of ``bytes`` bytes in all (the
    ``data/`` folder), for ``patterns``; ``damaged`` lists the keys written as damaged."""

    out: Path
    patterns: list[int]
    files: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)
    units: UnitsWritten = field(default_factory=UnitsWritten)  # unit pages (passage visualize)

    @property
    def megabytes(self) -> float:
        return self.bytes / MB


def size_text(n: int) -> str:
    """``16.6 kB``, ``12.3 MB``: a report's size for people (decimal units)."""
    return f"{n / MB:.1f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB"


def select_patterns(text: str, num_patterns: int, default: str = DEFAULT_PATTERNS) -> list[int]:
    """The exported patterns: ``text`` as render's ``--patterns`` ('0,3,5-9'); the default
    range ('0-99') stops at the run's last pattern instead of refusing a smaller run."""
    if text.strip() == default:
        first, _, last = default.partition("-")
        return list(range(int(first), min(int(last) + 1, num_patterns)))
    return parse_indices(text, num_patterns)


def epoch_part(epoch: int | None) -> str:
    return "b" if epoch is None else f"e{epoch}"


def data_key(run_id: int, layer_dir: str, epoch: int | None, pattern: int) -> str:
    """``r<run>/<layer dir>/<e<epoch>|b>/<pattern>``: the script ``data/<key>.js``."""
    return f"r{run_id}/{layer_dir}/{epoch_part(epoch)}/{pattern}"


def put_script(key: str, payload: Any) -> bytes:
    """The data script of one payload (JSON is JavaScript; NaN and inf become ``null``)."""
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"PASSAGE.put(" + orjson.dumps(key) + b", " + body + b");\n"


def tensor_payload(resp: Response) -> dict[str, Any]:
    """The API's answer for one pattern's values as the contract's data payload."""
    if resp.status == 422:
        return {"damaged": orjson.loads(resp.body).get("damaged", "damaged file")}
    h = resp.headers
    return {
        "shape": [int(d) for d in h["X-Shape"].split(",") if d],
        "min": _number(h["X-Min"]),
        "max": _number(h["X-Max"]),
        "layerMin": _number(h["X-Layer-Min"]),
        "layerMax": _number(h["X-Layer-Max"]),
        "b64": base64.b64encode(resp.body).decode("ascii"),
    }


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _size(shape: Sequence[int | None]) -> int:
    return int(np.prod([s or 1 for s in shape], dtype=np.int64))


def _exported(run: Run, key: str, epoch: int | None, patterns: Sequence[int]) -> Iterator[int]:
    """The exported patterns the run holds files for, for layer or input ``key`` at ``epoch``."""
    wanted = sorted(patterns)
    for entry in run.chunks(key, epoch):
        lo = bisect.bisect_left(wanted, entry.first)
        hi = bisect.bisect_left(wanted, entry.first + entry.count)
        yield from wanted[lo:hi]


def _items(
    run: Run, run_id: int, patterns: Sequence[int]
) -> Iterator[tuple[str, str, Sequence[int | None]]]:
    """``(key, API target, per-pattern shape)`` of every data script of ``run``: each layer at each epoch, then
    each stored input, for the exported patterns it holds."""
    for rec in run.layer_records:
        for epoch in run.epochs:
            at = "" if epoch is None else f"&epoch={epoch}"
            for p in _exported(run, rec.name, epoch, patterns):
                yield (
                    data_key(run_id, rec.dir, epoch, p),
                    f"/api/run/{run_id}/data?layer={quote(rec.name, safe='')}&pattern={p}{at}",
                    rec.shape,
                )
    for rec in run.input_records:
        if not SAFE_NAME.fullmatch(rec.name):
            log.warning("%s: input %r left out of the report (not a file name)", run.path, rec.name)
            continue
        for p in _exported(run, rec.key, None, patterns):
            yield (
                f"r{run_id}/inputs/{rec.name}/{p}",
                f"/api/run/{run_id}/input?name={quote(rec.name, safe='')}&pattern={p}",
                rec.shape,
            )


def estimate(runs: Sequence[Run], patterns: Sequence[int]) -> tuple[int, int]:
    """``(files, bytes)`` of the data scripts before writing them (a bound a little above):
    base64 of 4 bytes per value, the key and a wrapper per file, for every captured (layer or
    input, epoch, exported pattern)."""
    files = total = 0
    for run_id, run in enumerate(runs):
        for key, _, shape in _items(run, run_id, patterns):
            files += 1
            total += 4 * ((4 * _size(shape) + 2) // 3) + PUT_OVERHEAD + len(key)
    return files, total


Shape = tuple[int, ...]


def shape_key(shape: Shape) -> str:
    """``3,4,70`` (``''`` for a scalar): a layout's key in ``PASSAGE_STATIC.layouts``, as the
    page joins a shape and as ``/api/layout?shape=`` takes it."""
    return ",".join(str(v) for v in shape)


def known_shapes(run: Run) -> set[Shape]:
    """The per-pattern shapes of ``run``'s layers and stored inputs that run.json fixes (a
    free size, None, is known only from the data), and the scalar's: a cell not drawn yet is
    sized by its layer's layout, an input's by the scalar's."""
    records = [*run.layer_records, *run.input_records]
    shapes = {tuple(int(v) for v in r.shape) for r in records if None not in r.shape}
    return shapes | {()}


def layouts_json(api: Api, shapes: set[Shape]) -> bytes:
    """``{"<shape key>": layout, ...}``: the API's ``/api/layout`` answer for each shape."""
    parts = []
    for shape in sorted(shapes, key=lambda s: (len(s), s)):
        key = shape_key(shape)
        resp = api.handle("GET", f"/api/layout?shape={key}")
        if resp.status != 200:
            raise StoreError(f"layout of shape ({key}): {orjson.loads(resp.body)['error']}")
        parts.append(orjson.dumps(key) + b": " + resp.body)
    return b"{" + b", ".join(parts) + b"}"


class _Writer:
    """Writes the report's files atomically, counts the data bytes, and notes the shapes the
    page will draw (their layouts go into ``data/index.js``)."""

    def __init__(self, api: Api, out: Path, summary: ReportSummary, bar: tqdm) -> None:
        self.api, self.out, self.summary, self.bar = api, out, summary, bar
        self.shapes: set[Shape] = set()

    def write(self, rel: str, data: bytes, counted: bool = True) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        if counted:
            self.summary.files += 1
            self.summary.bytes += len(data)

    def put(self, key: str, payload: Any) -> None:
        self.write(f"data/{key}.js", put_script(key, payload))

    def get(self, target: str, expected: tuple[int, ...] = (200,)) -> Response | None:
        """The API's answer to ``target``: None for a 404 (the run lacks it), an error for
        any status outside ``expected``."""
        resp = self.api.handle("GET", target)
        if resp.status == 404:
            return None
        if resp.status not in expected:
            message = orjson.loads(resp.body).get("error", "") if resp.body else ""
            raise StoreError(f"{target}: {message}")
        return resp

    def data(self, key: str, target: str) -> None:
        resp = self.get(target, (200, 422))
        if resp is None:  # a live run changed under us: shown as not captured
            log.warning("%s: not captured, left out of the report", key)
            return
        payload = tensor_payload(resp)
        if "damaged" in payload:
            self.summary.damaged.append(key)
        else:
            self.shapes.add(tuple(payload["shape"]))
        self.put(key, payload)
        self.bar.update(1)


def _write_extras(w: _Writer, info: dict[str, Any]) -> None:
    """Metrics, analysis, CKA, the diagram and the info table, where the run has them: the
    API's JSON answers as they are (an analysis file it cannot read is left out, said once)."""
    base, run_id = f"r{info['id']}", info["id"]
    targets = [(f"{base}/info", f"/api/run/{run_id}/info")]
    if info["has_metrics"]:
        targets.append((f"{base}/metrics", f"/api/run/{run_id}/metrics"))
    if info["has_analysis"]:
        targets += [
            (
                f"{base}/analysis/{rec['dir']}",
                f"/api/run/{run_id}/analysis?layer={quote(rec['name'], safe='')}",
            )
            for rec in info["layers"]
        ]
        targets.append((f"{base}/cka", f"/api/run/{run_id}/cka"))
    for key, target in targets:
        resp = w.get(target, (200, 422))
        if resp is None:
            continue
        if resp.status == 422:
            log.warning("%s left out of the report: %s", key, orjson.loads(resp.body)["error"])
            continue
        w.write(f"data/{key}.js", b"PASSAGE.put(" + orjson.dumps(key) + b", " + resp.body + b");\n")
        if key == f"{base}/cka":  # the CKA heatmap: an (n, n) matrix, drawn as it is
            n = len(orjson.loads(resp.body)["names"])
            w.shapes.add((n, n))
    if info["has_model"]:
        resp = w.get(f"/api/run/{run_id}/model.png")
        if resp is not None:
            w.write(f"data/{base}/model.png", resp.body)


def index_html(app_html: str, size_line: str) -> str:
    """The app's page with ``data/index.js`` loaded before ``app.js`` and the size stated."""
    match = APP_SCRIPT.search(app_html)
    if match is None:
        raise ConfigError(
            f'{ASSETS / "index.html"}: expected a <script src="assets/app.js"> tag to load '
            "the report's data before; received a page without one; reinstall passage"
        )
    note = f'<p id="report-footer" class="muted">{size_line}</p>\n'
    page = app_html[: match.start()] + INDEX_SCRIPT + app_html[match.start() :]
    return page.replace("</body>", note + "</body>", 1) if "</body>" in page else page + note


def _copy_assets(out: Path) -> str:
    """Copy every asset but the page into ``out/assets``; the page's text."""
    page = ASSETS / "index.html"
    if not page.is_file():
        raise ConfigError(
            f"the viewer's page is missing: expected {page}; reinstall passage with its "
            "package data (pipeline/viewer/assets)"
        )
    (out / "assets").mkdir(parents=True, exist_ok=True)
    for src in sorted(ASSETS.iterdir()):
        if src.is_file() and src.name != "index.html":
            shutil.copyfile(src, out / "assets" / src.name)
    return page.read_text(encoding="utf-8")


def build_report(
    runs: Sequence[str | Path],
    out: str | Path,
    patterns: str = DEFAULT_PATTERNS,
    max_mb: float = DEFAULT_MAX_MB,
    quiet: bool = False,
) -> ReportSummary:
    """Write the static report of ``runs`` (shown side by side) into ``out``: the app, one
    data script per (run, layer, epoch, exported pattern) and per stored input and pattern,
    and each run's metrics, analysis, CKA, diagram and info where it has them, each the
    server's answer (``Api``) as a script. ``ConfigError`` (nothing written) when the data
    would exceed ``max_mb`` megabytes; damaged data files become damaged cells."""
    if not runs:
        raise ConfigError("passage report: expected at least one run folder, received none")
    api = Api([Path(r) for r in runs])
    opened = [api.runs.state(i).run for i in range(len(runs))]
    picked = select_patterns(patterns, max(r.num_patterns for r in opened))
    files, size = estimate(opened, picked)
    if size > max_mb * MB:
        fit = max(1, int(len(picked) * max_mb * MB / size))
        raise ConfigError(
            f"the report would hold about {size_text(size)} of data for {len(picked)} "
            f"pattern(s), above --max-mb {max_mb:g}; pick fewer patterns (about {fit} fit, "
            f"e.g. --patterns 0-{fit - 1}) or raise --max-mb"
        )
    out = Path(out)
    summary = ReportSummary(out=out, patterns=picked)
    app_html = _copy_assets(out)
    infos = orjson.loads(api.handle("GET", "/api/runs").body)["runs"]
    with tqdm(total=files, unit="file", desc="report", disable=quiet, leave=False) as bar:
        w = _Writer(api, out, summary, bar)
        for run_id, run in enumerate(opened):
            w.shapes |= known_shapes(run)
            for key, target, _ in _items(run, run_id, picked):
                w.data(key, target)
            _write_extras(w, infos[run_id])
    # unit pages last, in what the size budget leaves after the patterns' data
    for run_id in range(len(opened)):
        if infos[run_id].get("features"):
            got = write_units(
                api,
                run_id,
                lambda key, data: w.write(f"data/{key}.js", data),
                lambda: max_mb * MB - summary.bytes,
            )
            summary.units.included += got.included
            summary.units.total += got.total
    colormaps = api.handle("GET", "/api/colormaps").body
    units = {"included": summary.units.included, "total": summary.units.total}
    static = orjson.dumps(
        {"runs": infos, "patterns": picked, "bytes": summary.bytes, "units": units}
    )
    w.write(
        "data/index.js",
        b"window.PASSAGE_STATIC = "
        + static[:-1]
        + b', "colormaps": '
        + colormaps
        + b', "layouts": '
        + layouts_json(api, w.shapes)
        + b"};\n",
        counted=False,
    )
    size_line = (
        f"Static report: {len(opened)} run(s), {len(picked)} pattern(s), "
        f"{summary.files} data files, {size_text(summary.bytes)}"
    )
    if summary.units.total:
        size_line += f"; unit pages: {summary.units.included} of {summary.units.total}"
        if summary.units.left_out:
            size_line += f" (the rest above --max-mb {max_mb:g})"
    w.write("index.html", index_html(app_html, size_line).encode("utf-8"), counted=False)
    if summary.damaged:
        log.warning("%d damaged data file(s) shown as damaged cells", len(summary.damaged))
    return summary
