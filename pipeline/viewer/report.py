"""``passage report RUN [RUN...] --out DIR``: the viewer's app as a static folder that opens
from ``file://`` with no server (docs/viewer.md, "Static report").

Browsers refuse ``fetch`` on ``file://`` but run ``<script src>``: every payload the server
would answer becomes a small script calling ``PASSAGE.put(key, payload)``, and
``data/index.js`` sets ``window.PASSAGE_STATIC`` (the runs, colormaps, exported patterns and
size). One file per (run, layer, epoch, pattern) with the float32 values in base64; the size
is bounded (``max_mb``) and checked before anything is written.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tqdm import tqdm

from ..errors import ConfigError, DamagedDataError, NotInRunError, StoreError
from ..rendering.layout import parse_indices
from ..store import Run, open_run
from ..store.disk import atomic_write_bytes
from ..store.manifest import ManifestEntry
from ..store.verify import info_table
from . import payloads
from .colormaps import NAMES, colormaps_json

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_PATTERNS = "0-99"
DEFAULT_MAX_MB = 200.0
INDEX_SCRIPT = '<script src="data/index.js"></script>\n'
APP_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"assets/app\.js\"", re.I)
PUT_OVERHEAD = 160  # bytes of a data script around its base64 (key, shape, min/max, call)
MB = 1_000_000


@dataclass
class ReportSummary:
    """What ``build_report`` wrote: ``files`` data scripts of ``bytes`` bytes in all (the
    ``data/`` folder), for ``patterns``; ``damaged`` lists the keys written as damaged."""

    out: Path
    patterns: list[int]
    files: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)

    @property
    def megabytes(self) -> float:
        return self.bytes / MB


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


def values_payload(
    values: np.ndarray, layer_range: tuple[float | None, float | None]
) -> dict[str, Any]:
    """One pattern's values as the contract's data payload (float32 little-endian, C order)."""
    arr = np.ascontiguousarray(values, dtype="<f4")
    lo, hi = payloads.value_range(arr)
    return {
        "shape": list(arr.shape),
        "min": lo,
        "max": hi,
        "layerMin": layer_range[0],
        "layerMax": layer_range[1],
        "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def _wanted(run: Run, patterns: Sequence[int]) -> list[int]:
    return [p for p in patterns if p < run.num_patterns]


def _size(shape: Sequence[int | None]) -> int:
    return int(np.prod([s or 1 for s in shape], dtype=np.int64))


def estimate(runs: Sequence[Run], patterns: Sequence[int]) -> tuple[int, int]:
    """``(files, bytes)`` of the data scripts before writing them: base64 of 4 bytes per
    value, plus a small wrapper per file, for every captured (layer, epoch, exported pattern)."""
    files = total = 0
    for run in runs:
        wanted = set(_wanted(run, patterns))
        for rec in run.layer_records:
            raw = 4 * _size(rec.shape)
            per_file = 4 * ((raw + 2) // 3) + PUT_OVERHEAD
            for epoch in run.epochs:
                for entry in run.chunks(rec.name, epoch):
                    hit = wanted.intersection(range(entry.first, entry.first + entry.count))
                    files += len(hit)
                    total += per_file * len(hit)
    return files, total


def _chunks_of(run: Run, layer: str, epoch: int | None, patterns: Sequence[int]) -> Iterator:
    """``(entry, [patterns in it])`` for every file of the layer holding exported patterns."""
    wanted = sorted(patterns)
    for entry in run.chunks(layer, epoch):
        inside = [p for p in wanted if entry.first <= p < entry.first + entry.count]
        if inside:
            yield entry, inside


def _entry_values(run: Run, entry: ManifestEntry) -> np.ndarray | DamagedDataError:
    try:
        return run.load(entry, check=True)
    except DamagedDataError as exc:
        return exc


class _Writer:
    """Writes the report's files atomically and counts the data bytes."""

    def __init__(self, out: Path, summary: ReportSummary, bar: tqdm) -> None:
        self.out, self.summary, self.bar = out, summary, bar

    def write(self, rel: str, data: bytes, counted: bool = True) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        if counted:
            self.summary.files += 1
            self.summary.bytes += len(data)
            self.bar.update(1)

    def put(self, key: str, payload: Any) -> None:
        self.write(f"data/{key}.js", put_script(key, payload))


def _write_layers(w: _Writer, run: Run, run_id: int, patterns: Sequence[int]) -> None:
    for rec in run.layer_records:
        for epoch in run.epochs:
            layer_range = payloads.layer_range(run, rec.name, epoch)
            for entry, inside in _chunks_of(run, rec.name, epoch, patterns):
                got = _entry_values(run, entry)
                for p in inside:
                    key = data_key(run_id, rec.dir, epoch, p)
                    if isinstance(got, DamagedDataError):
                        w.summary.damaged.append(key)
                        w.put(key, {"damaged": got.reason})
                    else:
                        w.put(key, values_payload(got[p - entry.first], layer_range))


def _write_extras(w: _Writer, run: Run, run_id: int) -> None:
    """Metrics, analysis, CKA, the diagram and the info table, where the run has them."""
    base = f"r{run_id}"
    if (run.path / payloads.METRICS).is_file():
        w.put(f"{base}/metrics", {"metrics": run.metrics()})
    for rec in run.layer_records:
        try:
            w.put(f"{base}/analysis/{rec.dir}", payloads.analysis_json(run, rec.name))
        except NotInRunError:
            pass
        except StoreError as exc:  # a damaged analysis file: left out, said once
            log.warning("%s: analysis of %s left out: %s", run.path, rec.name, exc)
    try:
        w.put(f"{base}/cka", payloads.cka_json(run))
    except NotInRunError:
        pass
    except StoreError as exc:
        log.warning("%s: CKA left out: %s", run.path, exc)
    model = run.path / payloads.MODEL_PNG
    if model.is_file():
        w.write(f"data/{base}/{payloads.MODEL_PNG}", model.read_bytes())
    w.put(f"{base}/info", {"text": info_table(run)})


def index_html(app_html: str, size_line: str) -> str:
    """The app's page with ``data/index.js`` loaded before ``app.js`` and the size stated."""
    match = APP_SCRIPT.search(app_html)
    if match is None:
        raise ConfigError(
            f'{ASSETS / "index.html"}: expected a <script src="assets/app.js"> tag to load '
            "the report's data before; received a page without one; reinstall passage"
        )
    note = f'<p id="report-size">{size_line}</p>\n'
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
    runs: Sequence[str | Path | Run],
    out: str | Path,
    patterns: str = DEFAULT_PATTERNS,
    max_mb: float = DEFAULT_MAX_MB,
    quiet: bool = False,
) -> ReportSummary:
    """Write the static report of ``runs`` (shown side by side) into ``out``: the app, one
    data script per (run, layer, epoch, exported pattern), and each run's metrics, analysis,
    CKA, diagram and info where it has them. ``ConfigError`` (nothing written) when the data
    would exceed ``max_mb`` megabytes; damaged data files become damaged cells."""
    if not runs:
        raise ConfigError("passage report: expected at least one run folder, received none")
    opened = [r if isinstance(r, Run) else open_run(r) for r in runs]
    n = max(r.num_patterns for r in opened)
    picked = select_patterns(patterns, n)
    files, size = estimate(opened, picked)
    if size > max_mb * MB:
        raise ConfigError(
            f"the report would hold about {size / MB:.1f} MB of data for {len(picked)} "
            f"pattern(s), above --max-mb {max_mb:g}; pick fewer patterns (e.g. --patterns "
            f"0-{max(0, int(len(picked) * max_mb * MB / size) - 1)}) or raise --max-mb"
        )
    out = Path(out)
    summary = ReportSummary(out=out, patterns=picked)
    app_html = _copy_assets(out)
    with tqdm(total=files, unit="file", desc="report", disable=quiet, leave=False) as bar:
        w = _Writer(out, summary, bar)
        for run_id, run in enumerate(opened):
            _write_layers(w, run, run_id, _wanted(run, picked))
            _write_extras(w, run, run_id)
    static = {
        "runs": [payloads.run_info(run, i) for i, run in enumerate(opened)],
        "colormaps": colormaps_json(NAMES),
        "patterns": picked,
        "bytes": summary.bytes,
    }
    w.write(
        "data/index.js",
        b"window.PASSAGE_STATIC = "
        + orjson.dumps(static, option=orjson.OPT_SERIALIZE_NUMPY)
        + b";\n",
        counted=False,
    )
    size_line = (
        f"Static report: {len(opened)} run(s), {len(picked)} pattern(s), "
        f"{summary.files} data files, {summary.megabytes:.1f} MB"
    )
    w.write("index.html", index_html(app_html, size_line).encode("utf-8"), counted=False)
    if summary.damaged:
        log.warning("%d damaged data file(s) shown as damaged cells", len(summary.damaged))
    return summary
