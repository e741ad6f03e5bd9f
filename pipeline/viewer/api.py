"""The viewer's HTTP API as a pure function: ``Api(runs).handle(method, target) -> Response``.

No sockets here (``server.py`` only passes requests in and answers out). Requests name runs
by position, layers by name, patterns and epochs by number; they are resolved to a manifest
entry and only that entry's file is read, memory-mapped, one pattern's slice of it. No path
from a request reaches the filesystem: the page and its assets come from a fixed list made
when this module is imported. Every error is JSON ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import DamagedDataError, NotInRunError, StoreError
from ..store import analysis_files
from ..store.verify import info_table
from .colormaps import NAMES, colormaps_json
from .compare_api import ROUTES as COMPARE_ROUTES
from .compare_api import CompareApi
from .layouts import cell_layout
from .live import LiveRuns, RunState
from .pattern_api import pattern_bundle, read_slice
from .routing import BadRequest, Request, parse_int, parse_shape, parse_target
from .unit_api import ROUTES as UNIT_ROUTES
from .unit_api import UnitApi

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).parent / "assets"
ASSETS: dict[str, Path] = (
    {p.name: p for p in sorted(ASSETS_DIR.iterdir()) if p.is_file()} if ASSETS_DIR.is_dir() else {}
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
JSON = "application/json"
PLACEHOLDER = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>Passage</title></head>"
    b"<body data-state='ready'><h1>Passage viewer</h1><p>The app is not installed: "
    b"pipeline/viewer/assets/index.html is missing. The API answers under "
    b"<a href='/api/runs'>/api/runs</a>.</p></body></html>"
)
ANALYSIS_KEYS = analysis_files.LAYER_KEYS


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200) -> Response:
    """``payload`` as JSON; NaN and infinities become ``null``."""
    return Response(status, JSON, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))


def error_response(status: int, message: str, **extra: str) -> Response:
    return json_response({"error": " ".join(message.split()), **extra}, status)


def number_text(value: float) -> str:
    """A header number: the shortest repr, ``nan`` for none."""
    return repr(float(value)) if np.isfinite(value) else "nan"


def plain(value: np.ndarray) -> Any:
    """An array as nested lists of Python numbers (floats stay floats, so NaN -> null)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64).tolist()
    return arr.tolist()


@cache
def _colormaps() -> bytes:
    return orjson.dumps(colormaps_json(NAMES))


@lru_cache(maxsize=1024)
def layout_json(shape: tuple[int, ...]) -> bytes:
    """The ``/api/layout?shape=...`` answer: render's layout of one pattern's output of
    ``shape`` (``layouts.cell_layout``), the same bytes for the server and the report."""
    return orjson.dumps(cell_layout(shape))


class Api:
    """Answers the viewer's requests for ``runs`` (ids are positions in the list)."""

    def __init__(self, runs: list[Path]) -> None:
        self.runs = LiveRuns(runs)
        self._run_routes: dict[str, Callable[[RunState, Request], Response]] = {
            "data": self._data,
            "pattern": self._pattern_bundle,
            "input": self._input,
            "metrics": self._metrics,
            "analysis": self._analysis,
            "cka": self._cka,
            "model.png": self._model,
            "info": self._info,
        }
        self.compare = CompareApi(self.runs)
        self.units = UnitApi(self.runs)

    def handle(self, method: str, raw_path: str) -> Response:
        """The answer to one request (``raw_path``: the request target as sent)."""
        if method != "GET":
            resp = error_response(
                405, f"method {method[:20]!r} is not allowed; the viewer is read-only (GET)"
            )
            resp.headers["Allow"] = "GET"
            return resp
        try:
            req = parse_target(raw_path)
            return self._route(req)
        except BadRequest as exc:
            return error_response(exc.status, str(exc))
        except DamagedDataError as exc:
            return error_response(422, str(exc), damaged=exc.reason)
        except NotInRunError as exc:
            return error_response(404, str(exc))
        except StoreError as exc:
            return error_response(422, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must still answer JSON, not a traceback
            log.exception("viewer: %s failed", raw_path[:200])
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    def _route(self, req: Request) -> Response:
        if req.route == "index":
            page = ASSETS.get("index.html")
            return Response(200, TYPES[".html"], page.read_bytes() if page else PLACEHOLDER)
        if req.route == "asset":
            name = req.args[0]
            if name not in ASSETS:
                raise BadRequest(404, f"no asset {name!r}; the app ships: {', '.join(ASSETS)}")
            path = ASSETS[name]
            return Response(
                200, TYPES.get(path.suffix, "application/octet-stream"), path.read_bytes()
            )
        if req.route == "runs":
            return json_response(
                {"runs": [self.runs.state(i).runinfo() for i in range(len(self.runs))]}
            )
        if req.route == "colormaps":
            return Response(200, JSON, _colormaps())
        if req.route == "layout":
            shape = req.param("shape")
            assert shape is not None
            return Response(200, JSON, layout_json(parse_shape(shape)))
        if req.route in COMPARE_ROUTES:
            return json_response(self.compare.handle(req))
        if req.route in UNIT_ROUTES:
            return json_response(self.units.handle(req))
        run_id, what = req.args
        state = self.runs.state(parse_int(run_id, "run id"))
        return self._run_routes[what](state, req)

    # -- one run --------------------------------------------------------------------------------
    def _epoch(self, state: RunState, req: Request) -> int | None:
        return state.run.resolve_epoch(req.number("epoch", required=False))

    def _layer(self, state: RunState, req: Request) -> str:
        name = req.param("layer")
        assert name is not None
        state.run.layer(name)  # NotInRunError naming the layers when unknown
        if name not in state.run.layers:
            raise NotInRunError(f"layer {name[:80]!r} is not in run {state.index}")
        return name

    def _pattern(self, state: RunState, req: Request) -> int:
        pattern = req.number("pattern")
        assert pattern is not None
        n = state.run.num_patterns
        if not 0 <= pattern < n:
            raise NotInRunError(
                f"pattern {pattern} is out of range; run {state.index} holds {n} (0 to {n - 1})"
            )
        return pattern

    def _slice(self, state: RunState, key: str, pattern: int, epoch: int | None) -> Response:
        values, ranges = read_slice(self.runs, state, key, pattern, epoch)
        headers = {
            "X-Shape": ",".join(str(d) for d in values.shape),
            "X-Min": number_text(ranges["min"]),
            "X-Max": number_text(ranges["max"]),
            "X-Layer-Min": number_text(ranges["layerMin"]),
            "X-Layer-Max": number_text(ranges["layerMax"]),
        }
        return Response(200, "application/octet-stream", values.tobytes(), headers)

    def _pattern_bundle(self, state: RunState, req: Request) -> Response:
        """Every input's and layer's slice of one pattern in one answer (pattern_api.py)."""
        started = time.perf_counter()
        pattern = self._pattern(state, req)
        with_layouts = req.param("layouts", required=False)
        if with_layouts not in (None, "0", "1"):
            raise BadRequest(400, f"layouts must be 0 or 1; received {with_layouts[:20]!r}")
        body, count = pattern_bundle(
            self.runs,
            state,
            pattern,
            self._epoch(state, req),
            layout_json if with_layouts == "1" else None,
        )
        took = (time.perf_counter() - started) * 1000
        # the server's share of a switch, as the page's resource timing shows it (the bench)
        headers = {"X-Parts": str(count), "Server-Timing": f"slices;dur={took:.2f}"}
        return Response(200, "application/octet-stream", body, headers)

    def _data(self, state: RunState, req: Request) -> Response:
        layer = self._layer(state, req)
        pattern = self._pattern(state, req)
        return self._slice(state, layer, pattern, self._epoch(state, req))

    def _input(self, state: RunState, req: Request) -> Response:
        name = req.param("name")
        assert name is not None
        record = state.run.input(name)
        pattern = self._pattern(state, req)
        return self._slice(state, record.key, pattern, None)

    def _metrics(self, state: RunState, req: Request) -> Response:
        return json_response({"metrics": state.run.metrics()})

    def _analysis(self, state: RunState, req: Request) -> Response:
        layer = self._layer(state, req)
        epoch = self._epoch(state, req)
        result = state.run.analysis(layer, epoch)
        payload: dict[str, Any] = {
            "layer": layer,
            "epoch": epoch,
            "shape": list(state.run.layer(layer).shape),
        }
        payload.update({k: plain(result[k]) for k in ANALYSIS_KEYS if k in result})
        if "dead" in payload:
            payload["dead"] = [bool(v) for v in np.ravel(result["dead"])]
        return json_response(payload)

    def _cka(self, state: RunState, req: Request) -> Response:
        cka = state.run.cka(self._epoch(state, req))
        payload = {
            "names": cka.layers,
            "matrix": plain(cka.matrix),
            "method": cka.method,
            "epoch": cka.epoch,
        }
        return json_response(payload)

    def _model(self, state: RunState, req: Request) -> Response:
        path = state.run.path / "model.png"
        try:
            return Response(200, "image/png", path.read_bytes())
        except OSError:
            raise NotInRunError(
                f"run {state.index} has no model.png; capture without --no-architecture draws it"
            ) from None

    def _info(self, state: RunState, req: Request) -> Response:
        return json_response({"text": info_table(state.run)})
