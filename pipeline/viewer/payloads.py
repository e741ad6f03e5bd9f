"""The JSON payloads the viewer shows (the contract's RUNINFO, analysis and CKA answers), built
from an open run: plain dicts ready for ``orjson.dumps(..., option=OPT_SERIALIZE_NUMPY)``,
which writes NaN as ``null``. The static report and the server answer with the same ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..store import MANIFEST, METRICS, Run
from ..store.analysis_files import cka_file, folder, layer_file, load_result

MODEL_PNG = "model.png"
ANALYSIS_KEYS = (
    "mean",
    "std",
    "frac_positive",
    "dead",
    "hist_edges",
    "hist_counts",
    "top_index",
    "top_value",
    "channel_mean",
)


def manifest_version(run: Run) -> str:
    """``"<manifest size>-<mtime_ns>"``: changes whenever a manifest line lands."""
    try:
        st = (run.path / MANIFEST).stat()
    except OSError:
        return "0-0"
    return f"{st.st_size}-{st.st_mtime_ns}"


def patterns_ready(run: Run) -> int:
    """The complete prefix of patterns over all layers at the last epoch: what can be shown."""
    if not run.layers or not run.epochs:
        return 0
    ready = run.num_patterns
    for name in run.layers:
        end = 0
        for entry in run.chunks(name):
            if entry.first != end:
                break
            end = entry.first + entry.count
        ready = min(ready, end)
    return ready


def has_analysis(run: Run) -> bool:
    """Whether ``passage analyze`` wrote anything the viewer shows (layer statistics)."""
    epoch = run.epochs[-1] if run.epochs else None
    return any(
        (folder(run.path) / layer_file(rec.dir, epoch)).is_file() for rec in run.layer_records
    )


def run_info(run: Run, run_id: int) -> dict[str, Any]:
    """The contract's RUNINFO of ``run`` listed as ``run_id``."""
    return {
        "id": run_id,
        "name": run.path.resolve().name,
        "mode": "train" if run.is_training else "batch",
        "layers": [
            {"name": r.name, "class": r.class_name, "shape": list(r.shape), "dir": r.dir}
            for r in run.layer_records
        ],
        "inputs": run.inputs,
        "num_patterns": run.num_patterns,
        "patterns_ready": patterns_ready(run),
        "epochs": run.epochs or [None],
        "has_analysis": has_analysis(run),
        "has_model": (run.path / MODEL_PNG).is_file(),
        "has_metrics": (run.path / METRICS).is_file(),
        "version": manifest_version(run),
    }


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def value_range(values: np.ndarray) -> tuple[float | None, float | None]:
    """Finite min and max of ``values``; ``(None, None)`` when none is finite."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


def layer_range(run: Run, layer: str, epoch: int | None) -> tuple[float | None, float | None]:
    """The layer's range over the run at ``epoch``, from the manifest's per-file min/max."""
    lows = [e.min for e in run.chunks(layer, epoch) if finite_or_none(e.min) is not None]
    highs = [e.max for e in run.chunks(layer, epoch) if finite_or_none(e.max) is not None]
    return (min(lows) if lows else None), (max(highs) if highs else None)


def analysis_json(run: Run, layer: str, epoch: int | None = None) -> dict[str, Any]:
    """One layer's statistics as the contract's analysis payload (``NotInRunError`` when
    ``passage analyze`` did not write them)."""
    data = run.analysis(layer, epoch)
    out: dict[str, Any] = {"layer": layer, "shape": list(run.layer(layer).shape)}
    out.update({k: np.asarray(data[k]) for k in ANALYSIS_KEYS if k in data})
    return out


def cka_json(run: Run) -> dict[str, Any]:
    """The run's CKA matrix at its last epoch (``NotInRunError`` when not analyzed)."""
    epoch = run.epochs[-1] if run.epochs else None
    data = load_result(run.path, cka_file(epoch), "CKA")
    method = str(data["method"]) if "method" in data else "exact"
    return {"names": [str(n) for n in data["names"]], "matrix": data["matrix"], "method": method}
