"""The Unit view's histograms: a unit's activation over every pattern of the run at one epoch
(each pattern's channel activation: the mean of ``output[..., c]`` over every other axis, as
``analyze``), streamed from the layer's files through the viewer's checked loads.

The activations of every channel of a (run version, layer, epoch) are kept when small
(``ACTIVATION_BUDGET``), so the next unit of the layer costs nothing; each histogram is kept
per (run, version, layer, epoch, channel).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import DamagedDataError, NotInRunError
from .live import LiveRuns, RunState
from .unit_display import channel_activations, histogram

ACTIVATION_BUDGET = 64 << 20  # bytes of (patterns, channels) activations kept per layer
CACHE_ENTRIES = 8  # (run version, layer, epoch) activation matrices kept
HIST_ENTRIES = 4096  # histograms kept (run, version, layer, epoch, channel)


class UnitHistograms:
    """Histograms of units' activations over the runs of a viewer's ``LiveRuns``."""

    def __init__(self, runs: LiveRuns) -> None:
        self.runs = runs
        self._lock = threading.Lock()
        self._acts: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._hists: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

    def of(self, state: RunState, layer: str, epoch: int | None, channel: int) -> dict[str, Any]:
        """The unit's activation over every pattern of the run at ``epoch`` in 30 bins (a
        ``damaged`` message instead when a data file is damaged)."""
        key = (state.run.path, state.version, layer, epoch, channel)
        with self._lock:
            if key in self._hists:
                self._hists.move_to_end(key)
                return self._hists[key]
        try:
            acts = self._activations(state, layer, epoch, channel)
        except DamagedDataError as exc:
            return {"edges": [], "counts": [], "damaged": " ".join(str(exc).split())}
        except NotInRunError as exc:
            return {"edges": [], "counts": [], "missing": " ".join(str(exc).split())}
        result = histogram(acts)
        result["epoch"] = epoch
        with self._lock:
            self._hists[key] = result
            while len(self._hists) > HIST_ENTRIES:
                self._hists.popitem(last=False)
        return result

    def _activations(
        self, state: RunState, layer: str, epoch: int | None, channel: int
    ) -> np.ndarray:
        """Channel ``channel``'s activation on every pattern held (NaN where not captured)."""
        run = state.run
        key = (run.path, state.version, layer, epoch)
        with self._lock:
            whole = self._acts.get(key)
        if whole is not None:
            return whole[:, channel]
        rec = run.layer(layer)
        entries = run.chunks(layer, epoch)
        n = max((e.first + e.count for e in entries), default=0)
        known = bool(rec.shape) and rec.shape[-1] is not None  # else a free size
        channels = int(rec.shape[-1]) if known else 0
        keep_all = known and n * channels * 8 <= ACTIVATION_BUDGET
        out = np.full((n, channels) if keep_all else (n,), np.nan)
        for entry in entries:
            acts = channel_activations(self.runs.load(state, entry))
            at = slice(entry.first, entry.first + entry.count)
            if keep_all:
                out[at, : acts.shape[1]] = acts
            else:
                out[at] = acts[:, channel]
        if not keep_all:
            return out
        with self._lock:
            self._acts[key] = out
            while len(self._acts) > CACHE_ENTRIES:
                self._acts.popitem(last=False)
        return out[:, channel]
