"""The Compare view's API: a run's comparisons with neural data, as ``passage compare`` stored
them (``RUN/compare/NAME/``), and the RDMs beside them ready to draw.

- ``/api/run/R/compare``: ``{"comparisons": [names], "regions": bool}``;
- ``/api/run/R/compare/NAME``: ``Run.comparison(NAME)`` as JSON (NaN -> null) plus ``info``
  (what it was computed from: condition count, labels, region, kind, bootstrap, seed, the
  sources' file names) and ``score_range`` (the finite range of ``score``: the heatmap's color
  scale);
- ``/api/run/R/compare/NAME/rdm?layer=L[&epoch=E]`` (the layer's RDM) or
  ``?reference=mean|I`` (the mean of the reference RDMs, or reference I): JSON ``{"size",
  "conditions", "groups", "codes", ...}``: the RDM in condition order, rank-transformed,
  grouped by label and block-averaged to at most ``RDM_SIZE`` x ``RDM_SIZE``
  (``rendering.compare.rdm_order``, as the pictures), each entry one byte: ``round(v * 254)``
  of its rank in [0, 1], ``255`` for NaN, the size x size bytes in base64;
- ``/api/run/R/regions``: ``Run.regions()`` as JSON.

A comparison's name from a request is looked up among the run's comparisons before anything is
read; layers and epochs among the comparison's own. Model RDMs come from ``Run.rdm`` (its Gram
cache) and are kept in a small cache per run version.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotInRunError
from ..rendering.compare.rdm_order import downsample, label_order, mean_reference, rank_transform
from ..store import compare_files
from .live import LiveRuns, RunState
from .routing import BadRequest, Request, listed_epoch, parse_int

RDM_SIZE = 256  # the longest side of an RDM sent to the page
NAN_CODE = 255  # the byte of a NaN entry; ranks in [0, 1] are round(v * RANK_SCALE)
RANK_SCALE = 254
CACHE_ENTRIES = 64  # RDM answers kept (per run version, comparison, layer, epoch)
ROUTES = ("compare", "regions")


def rdm_codes(rdm: np.ndarray) -> np.ndarray:
    """(n, n) ranks in [0, 1] (NaN allowed) as uint8: ``round(v * 254)``, NaN -> 255."""
    codes = np.full(rdm.shape, NAN_CODE, dtype=np.uint8)
    finite = np.isfinite(rdm)
    codes[finite] = np.rint(np.clip(rdm[finite], 0.0, 1.0) * RANK_SCALE).astype(np.uint8)
    return codes


def display_rdm(
    rdm: np.ndarray, labels: np.ndarray | None, size: int = RDM_SIZE
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """An RDM in condition order as the page draws it: rank-transformed, conditions grouped by
    ``labels``, block-averaged to at most ``size`` x ``size``; and the label groups (start,
    stop, label) in condition positions of the grouped order."""
    order, groups = label_order(labels, rdm.shape[0])
    ranked = rank_transform(rdm)[np.ix_(order, order)]
    return downsample(ranked, size), groups


def finite_range(values: Any) -> list[float | None]:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return [None, None]
    return [float(finite.min()), float(finite.max())]


def plain(value: Any) -> Any:
    """Numpy values as JSON-ready Python values (float NaN stays NaN: orjson writes null)."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist() if value.dtype.kind == "f" else value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


class CompareApi:
    """Answers the compare routes for the viewer's ``LiveRuns``."""

    def __init__(self, runs: LiveRuns) -> None:
        self.runs = runs
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, req: Request) -> dict[str, Any]:
        """The JSON payload of one compare request (``BadRequest``/``NotInRunError`` else)."""
        state = self.runs.state(parse_int(req.args[0], "run id"))
        if req.route == "regions":
            return {k: plain(v) for k, v in state.run.regions().items()}
        _, name, part = req.args
        if name is None:
            return {
                "comparisons": state.run.comparisons,
                "regions": (compare_files.folder(state.run.path) / compare_files.REGIONS).is_file(),
            }
        name = self._name(state, name)
        if part is None:
            return self._comparison(state, name)
        return self._rdm(state, name, req)

    # -- one comparison -------------------------------------------------------------------------
    def _name(self, state: RunState, name: str) -> str:
        have = state.run.comparisons
        if name not in have:
            known = f"its comparisons: {', '.join(have)}" if have else "it has no comparison yet"
            raise NotInRunError(
                f"no comparison {name[:80]!r} in run {state.index}; {known} (passage compare "
                "writes them)"
            )
        return name

    def _comparison(self, state: RunState, name: str) -> dict[str, Any]:
        comparison = state.run.comparison(name)
        info = compare_files.read_info(state.run.path, name)
        payload: dict[str, Any] = {"name": name}
        payload.update({k: plain(v) for k, v in comparison.items()})
        conditions = info.get("conditions") or []
        payload["info"] = {
            "conditions": len(conditions),
            "labels": info.get("labels"),
            "region": info.get("region"),
            "kind": info.get("kind"),
            "bootstrap": info.get("bootstrap"),
            "seed": info.get("seed"),
            "sources": [Path(str(s)).name for s in info.get("sources") or []],
        }
        payload["score_range"] = finite_range(
            comparison.get("score", comparison.get("encoding_median", []))
        )
        return payload

    def _epoch(self, comparison: dict[str, Any], req: Request) -> int | None:
        epochs = comparison.get("epochs")
        return listed_epoch(req.number("epoch", required=False), epochs, "this comparison")

    def _rdm(self, state: RunState, name: str, req: Request) -> dict[str, Any]:
        info = compare_files.read_info(state.run.path, name)
        conditions = np.asarray(info.get("conditions") or [], dtype=np.int64)
        raw_labels = info.get("labels")
        labels = None if raw_labels is None else np.asarray(raw_labels, dtype=np.int64)
        layer = req.param("layer", required=False)
        reference = req.param("reference", required=False)
        if (layer is None) == (reference is None):
            raise BadRequest(
                400, "expected one of layer=NAME (a layer's RDM) or reference=mean|INDEX"
            )
        if layer is not None:
            comparison = state.run.comparison(name)
            if layer not in comparison["layers"]:
                raise NotInRunError(
                    f"layer {layer[:80]!r} is not in comparison {name!r}; its layers: "
                    f"{', '.join(comparison['layers'])}"
                )
            epoch = self._epoch(comparison, req)
            key: tuple[Any, ...] = (state.run.path, state.version, name, "layer", layer, epoch)
            what: dict[str, Any] = {"layer": layer, "epoch": epoch}
            distance = comparison["distance"]
        else:
            if req.param("epoch", required=False) is not None:
                raise BadRequest(400, "epoch=: a reference RDM has no epoch; leave it out")
            key = (state.run.path, state.version, name, "reference", reference)
            what = {"reference": reference}
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if layer is not None:
            rdm = self._model_rdm(state, layer, distance, what["epoch"], conditions)
        else:
            rdm = self._reference_rdm(state, name, reference)
        if rdm.shape[0] != conditions.size:
            raise NotInRunError(
                f"comparison {name!r} is inconsistent: an RDM of {rdm.shape[0]} conditions for "
                f"{conditions.size} listed in its info.json; run passage compare again"
            )
        shown, groups = display_rdm(rdm, labels)
        payload = {
            **what,
            "size": int(shown.shape[0]),
            "conditions": int(conditions.size),
            "groups": [list(g) for g in groups],
            "scale": RANK_SCALE,
            "nan": NAN_CODE,
            "codes": base64.b64encode(rdm_codes(shown).tobytes()).decode("ascii"),
        }
        with self._lock:
            self._cache[key] = payload
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return payload

    def _model_rdm(
        self, state: RunState, layer: str, distance: str, epoch: int | None, conditions: np.ndarray
    ) -> np.ndarray:
        """The layer's RDM over the comparison's conditions, in their order."""
        patterns = np.unique(conditions)
        rdm = state.run.rdm(layer, distance, epoch, patterns=patterns)
        at = np.searchsorted(patterns, conditions)
        return np.asarray(rdm, dtype=np.float64)[np.ix_(at, at)]

    def _reference_rdm(self, state: RunState, name: str, reference: str) -> np.ndarray:
        references = compare_files.read_references(state.run.path, name)
        count = references.shape[0]
        if count == 0:
            raise NotInRunError(f"comparison {name!r} has no reference RDMs (encoding only)")
        if reference == "mean":
            return mean_reference(np.asarray(references))
        index = parse_int(reference, "reference")
        if not 0 <= index < count:
            raise NotInRunError(
                f"reference {index} is out of range; comparison {name!r} holds {count} "
                f"(0 to {count - 1}, or mean)"
            )
        return np.asarray(references[index], dtype=np.float64)
