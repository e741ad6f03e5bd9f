"""The Unit view's API: what ``passage visualize`` stored for each unit (channel) of a layer,
with the run's own data about that unit beside it.

- ``/api/run/R/features``: the visualized layers, each with its visualized epochs, the
  channels stored at each, whether top-pattern attributions exist, and the settings; the run's
  input shape;
- ``/api/run/R/unit?layer=L&channel=C[&epoch=E]``: ``Run.feature`` (the image as float32
  little-endian base64, shape, space, low, high, activation, dataset activation, steps,
  seed), ``Run.top_patterns`` (index, value; each input as display bytes and each
  attribution as its overlay mask, 0..255), the channel's statistics from ``Run.analysis``
  (with class means when labels exist) and the histogram of its activation over every
  pattern of the run at that epoch (30 bins);
- ``/api/run/R/unit-epochs?layer=L&channel=C``: the image, activation and top indices at
  each visualized epoch (the training run's strip);
- ``/api/run/R/features-grid?layer=L[&epoch=E]``: every visualized channel's image as a
  thumbnail (display bytes, at most ``GRID_PX`` a side) with its activation, for the layer
  page.

Layers, epochs and channels from a request are looked up among the run's own lists first
(400 for a malformed value, 404 for one the run lacks). Histograms: ``unit_hist``.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import NotInRunError, StoreError
from ..rendering.features.display import attribution_mask
from ..store.feature_files import ATTRIBUTION_KINDS, layer_settings, parse_feature_key
from .colormaps import lut
from .live import LiveRuns, RunState
from .routing import Request, listed_epoch, parse_int
from .unit_display import display_codes, is_rgb, scale_bytes, thumbnail_codes
from .unit_hist import UnitHistograms

ROUTES = ("unit",)
OVERLAY_CMAP = "hot"  # an attribution's overlay colours (as the .top.png pictures)
OVERLAY_ALPHA = 0.7  # its weight where the mask is 1
GRID_PX = 96  # the longest side of a layer page's thumbnail
CACHE_ENTRIES = 8  # run versions whose stored channels are kept


def b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def float32(arr: np.ndarray) -> dict[str, Any]:
    """An array as the page decodes it: its shape and float32 little-endian bytes, base64."""
    values = np.ascontiguousarray(arr, dtype="<f4")
    return {"shape": list(values.shape), "b64": b64(values)}


def number(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def ranges_text(values: list[int]) -> str:
    """``0-15, 20, 31-33``: sorted integers as runs (``none`` when empty)."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


def stored_channels(state: RunState) -> dict[str, dict[int | None, dict[str, set[int]]]]:
    """layer -> epoch -> {"image": channels whose visualization the run holds (image and
    activation files), "top": those that also have their top patterns (all four files)}."""
    run = state.run
    listed: dict[tuple[str, int | None], dict[str, set[int]]] = {}
    for entry in run.feature_entries:
        parsed = parse_feature_key(entry.layer)
        if parsed is not None:
            kinds = listed.setdefault((parsed[1], entry.epoch), {})
            kinds.setdefault(parsed[0], set()).update(range(entry.first, entry.first + entry.count))
    out: dict[str, dict[int | None, dict[str, set[int]]]] = {}
    for layer in run.feature_layers:
        for epoch in run.feature_epochs(layer):
            image = {int(c) for c in run.feature_channels(layer, epoch)}
            kinds = listed.get((layer, epoch), {})
            top = set(image)
            for kind in ATTRIBUTION_KINDS:
                top &= kinds.get(kind, set())
            out.setdefault(layer, {})[epoch] = {"image": image, "top": top}
    return out


class UnitApi:
    """Answers the unit routes for the viewer's ``LiveRuns``."""

    def __init__(self, runs: LiveRuns) -> None:
        self.runs = runs
        self._lock = threading.Lock()
        self.histograms = UnitHistograms(runs)
        self._stored: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

    def stored(self, state: RunState) -> dict[str, dict[int | None, dict[str, set[int]]]]:
        """``stored_channels`` of the run at this manifest version (kept for the next
        request)."""
        key = (state.run.path, state.version)
        with self._lock:
            if key in self._stored:
                return self._stored[key]
        found = stored_channels(state)
        with self._lock:
            self._stored[key] = found
            while len(self._stored) > CACHE_ENTRIES:
                self._stored.popitem(last=False)
        return found

    def handle(self, req: Request) -> dict[str, Any]:
        """The JSON payload of one unit request (``BadRequest``/``NotInRunError`` else)."""
        state = self.runs.state(parse_int(req.args[0], "run id"))
        what = req.args[1]
        if what == "features":
            return self.features(state)
        layer = self._layer(state, req)
        if what == "features-grid":
            return self.grid(state, layer, self._epoch(state, layer, req))
        if what == "unit-epochs":
            return self.epochs(state, layer, self._channel(state, layer, None, req, any_epoch=True))
        epoch = self._epoch(state, layer, req)
        return self.unit(state, layer, self._channel(state, layer, epoch, req), epoch)

    # -- what a request names ---------------------------------------------------------------------
    def _layer(self, state: RunState, req: Request) -> str:
        name = req.param("layer")
        assert name is not None
        have = state.run.feature_layers
        if name not in have:
            known = f"its visualized layers: {', '.join(have)}" if have else "none is visualized"
            raise NotInRunError(
                f"layer {name[:80]!r} has no feature visualization in run {state.index}; "
                f"{known} (passage visualize writes them)"
            )
        return name

    def _epoch(self, state: RunState, layer: str, req: Request) -> int | None:
        epochs = state.run.feature_epochs(layer)
        what = f"the visualizations of layer {layer!r}"
        return listed_epoch(req.number("epoch", required=False), epochs, what)

    def _channel(
        self, state: RunState, layer: str, epoch: int | None, req: Request, any_epoch: bool = False
    ) -> int:
        channel = req.number("channel")
        assert channel is not None
        per_epoch = self.stored(state).get(layer, {})
        if any_epoch:
            have = sorted(set().union(*(k.get("image", set()) for k in per_epoch.values())))
        else:
            have = sorted(per_epoch.get(epoch, {}).get("image", set()))
        if channel not in have:
            at = "" if epoch is None or any_epoch else f" at epoch {epoch}"
            raise NotInRunError(
                f"channel {channel} of layer {layer!r} is not visualized{at}; visualized "
                f"channels: {ranges_text(have)}"
            )
        return channel

    # -- payloads ---------------------------------------------------------------------------------
    def features(self, state: RunState) -> dict[str, Any]:
        run = state.run
        stored = self.stored(state)
        layers = []
        for name in run.feature_layers:
            rec = run.layer(name)
            entries = []
            for epoch in run.feature_epochs(name):
                kinds = stored.get(name, {}).get(epoch, {})
                entries.append(
                    {
                        "epoch": epoch,
                        "channels": sorted(kinds.get("image", set())),
                        "attribution": sorted(kinds.get("top", set())),
                        "settings": layer_settings(run.path, name, epoch),
                    }
                )
            layers.append(
                {
                    "name": name,
                    "dir": rec.dir,
                    "class": rec.class_name,
                    "shape": list(rec.shape),
                    "visualized": entries,
                }
            )
        inputs = run.info.get("inputs") or []
        return {
            "run": state.index,
            "layers": layers,
            "input_shape": list(inputs[0]) if inputs else None,
            "training": run.is_training,
            "overlay": {"alpha": OVERLAY_ALPHA, "lut": lut(OVERLAY_CMAP).tolist()},
        }

    def unit(self, state: RunState, layer: str, channel: int, epoch: int | None) -> dict[str, Any]:
        run = state.run
        f = run.feature(layer, channel, epoch)
        settings = layer_settings(run.path, layer, f["epoch"]) or {}
        image = np.asarray(f["image"])
        space, low, high = str(f["space"]), float(f["low"]), float(f["high"])
        payload: dict[str, Any] = {
            "layer": layer,
            "channel": channel,
            "epoch": f["epoch"],
            "space": space,
            "low": low,
            "high": high,
            "preprocess": f.get("preprocess"),
            "steps": f["steps"],
            "seed": f["seed"],
            "settings": {
                k: settings.get(k)
                for k in ("lr", "top", "samples", "noise", "transforms", "size", "weights")
            },
            "image": float32(image),
            "activation": number(f["activation"]),
            "dataset_activation": number(f["dataset_activation"]),
            "top": self._top(state, layer, channel, f["epoch"], space, low, high),
            "analysis": self._analysis(state, layer, channel, f["epoch"]),
            "histogram": self.histograms.of(state, layer, f["epoch"], channel),
        }
        return payload

    def _top(
        self,
        state: RunState,
        layer: str,
        channel: int,
        epoch: int | None,
        space: str,
        low: float,
        high: float,
    ) -> dict[str, Any] | None:
        kinds = self.stored(state).get(layer, {}).get(epoch, {})
        if channel not in kinds.get("top", set()):
            return None
        top = state.run.top_patterns(layer, channel, epoch)
        keep = [k for k, i in enumerate(np.asarray(top["index"]).tolist()) if i >= 0]
        inputs, masks = [], []
        for k in keep:
            codes, lo, hi = display_codes(top["input"][k], space, low, high)
            inputs.append({"shape": list(codes.shape), "codes": b64(codes), "lo": lo, "hi": hi})
            mask = np.asarray(attribution_mask(np.asarray(top["attribution"][k]), space))
            if mask.shape != codes.shape[:2]:
                mask = mask.reshape(codes.shape[:2])
            masks.append({"shape": list(mask.shape), "codes": b64(scale_bytes(mask, 0.0, 1.0))})
        return {
            "index": [int(top["index"][k]) for k in keep],
            "value": [number(top["value"][k]) for k in keep],
            "inputs": inputs,
            "masks": masks,
        }

    def _analysis(
        self, state: RunState, layer: str, channel: int, epoch: int | None
    ) -> dict[str, Any] | None:
        run = state.run
        try:
            a = run.analysis(layer, epoch)
        except (NotInRunError, StoreError):
            return None
        if channel >= np.asarray(a["channel_mean"]).shape[-1]:
            return None
        out: dict[str, Any] = {
            "epoch": epoch,
            "channel_mean": number(a["channel_mean"][channel]),
            "channel_std": number(a["channel_std"][channel]),
            "channel_frac_positive": number(a["channel_frac_positive"][channel]),
            "dead": bool(np.ravel(a["dead"])[channel]),
            "top_index": [int(v) for v in np.asarray(a["top_index"])[channel]],
            "top_value": [number(v) for v in np.asarray(a["top_value"])[channel]],
        }
        if "classes" in a and "class_channel_mean" in a:
            classes = [int(c) for c in np.ravel(a["classes"])]
            names = [str(n) for n in (run.info.get("watch") or {}).get("class_names") or []]
            out["classes"] = classes
            out["class_names"] = [names[c] if 0 <= c < len(names) else str(c) for c in classes]
            out["class_channel_mean"] = [
                number(v) for v in np.asarray(a["class_channel_mean"])[:, channel]
            ]
        return out

    def epochs(self, state: RunState, layer: str, channel: int) -> dict[str, Any]:
        run = state.run
        stored = self.stored(state).get(layer, {})
        rows = []
        for epoch in run.feature_epochs(layer):
            kinds = stored.get(epoch, {})
            if channel not in kinds.get("image", set()):
                continue
            f = run.feature(layer, channel, epoch)
            top = None
            if channel in kinds.get("top", set()):
                index = np.asarray(run.top_patterns(layer, channel, epoch)["index"])
                top = [int(i) for i in index if i >= 0]
            rows.append(
                {
                    "epoch": epoch,
                    "image": float32(np.asarray(f["image"])),
                    "activation": number(f["activation"]),
                    "dataset_activation": number(f["dataset_activation"]),
                    "top_index": top,
                    "space": str(f["space"]),
                    "low": float(f["low"]),
                    "high": float(f["high"]),
                }
            )
        return {"layer": layer, "channel": channel, "epochs": rows}

    def grid(self, state: RunState, layer: str, epoch: int | None) -> dict[str, Any]:
        f = state.run.features_of(layer, epoch)
        images = np.asarray(f["images"])
        space, low, high = str(f["space"]), float(f["low"]), float(f["high"])
        thumbs = [thumbnail_codes(img, space, low, high, GRID_PX) for img in images]
        shape = list(thumbs[0].shape) if thumbs else []
        return {
            "layer": layer,
            "epoch": epoch,
            "space": space,
            "low": low,
            "high": high,
            "steps": f.get("steps"),
            "seed": f.get("seed"),
            "image_shape": list(images.shape[1:]),
            "rgb": is_rgb(space, tuple(images.shape[1:])),
            "thumb_shape": shape,
            "channels": [int(c) for c in f["channels"]],
            "activation": [number(v) for v in f["activation"]],
            "dataset_activation": [number(v) for v in f["dataset_activation"]],
            "thumbs": b64(np.stack(thumbs)) if thumbs else "",
        }
