"""``passage export tensorboard RUN --logdir DIR``: a run's layer outputs as TensorBoard event
files, written with ``tensorboardX`` (no TensorFlow import).

Per epoch (step = epoch; 0 for a batch run): one image summary per (exported pattern, layer),
tag ``pattern-<p>/<layer>``, drawn as the viewer draws a cell (1 pixel per value, channel
mosaics, near-square vectors, the colormap's 256-entry table indexed by
``round((v - lo) / (hi - lo) * 255)`` over the pattern's finite range; NaN/inf magenta, layout
padding white); one histogram per layer, tag ``activations/<layer>``, over every exported
pattern's finite values (64 equal bins, numpy's ``histogram``); and the epoch metrics of
``metrics.jsonl`` as scalars ``metrics/<name>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, DamagedDataError
from ..rendering.layout import channel_mosaic, vector_image
from ..store import Run, open_run
from .colormaps import lut
from .static_report import select_patterns

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = "0-9"
HIST_BINS = 64
BAD = (255, 0, 255)  # NaN/inf values, as the viewer draws them
PAD = (255, 255, 255)  # gaps between mosaic tiles, the tail of a vector image
_TAG_CHARS = re.compile(r"[^-/\w.]")  # what TensorBoard keeps in a tag (tensorboardX's rule)


@dataclass
class ExportSummary:
    """What ``export_tensorboard`` wrote into ``logdir``."""

    logdir: Path
    patterns: list[int]
    images: int = 0
    histograms: int = 0
    scalars: int = 0
    damaged: list[str] = field(default_factory=list)


def tag(text: str) -> str:
    """A TensorBoard tag: characters other than letters, digits, ``-/_.`` become ``_``."""
    return _TAG_CHARS.sub("_", text).lstrip("/")


def image_tag(pattern: int, layer: str) -> str:
    return tag(f"pattern-{pattern}/{layer}")


def histogram_tag(layer: str) -> str:
    return tag(f"activations/{layer}")


def picture(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(image, padding)``: one pattern's output as a 2-D float32 image the way the viewer
    lays it out (2-D as is, (H, W, C) as a mosaic of every channel with 1-pixel gaps, anything
    else as a near-square image of its flattened values) and where the layout padded it."""
    a = np.asarray(values, dtype=np.float32)
    if a.ndim == 2:
        return a, np.zeros(a.shape, bool)
    if a.ndim == 3:
        c = a.shape[-1]
        return channel_mosaic(a, c), np.isnan(channel_mosaic(np.ones(a.shape, np.float32), c))
    flat = a.reshape(-1)
    return vector_image(flat), np.isnan(vector_image(np.ones(flat.size, np.float32)))


def colorize(image: np.ndarray, padding: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each finite value through ``table`` over the image's finite range
    (a constant image uses entry 0), NaN/inf ``BAD``, padding ``PAD``."""
    finite = np.isfinite(image) & ~padding
    out = np.empty((*image.shape, 3), np.uint8)
    if finite.any():
        v = image[finite].astype(np.float64)
        lo, hi = v.min(), v.max()
        idx = np.zeros(v.shape, np.int64)
        if hi > lo:
            idx = np.clip(np.round((v - lo) / (hi - lo) * 255), 0, 255).astype(np.int64)
        out[finite] = table[idx]
    out[~finite] = BAD
    out[padding] = PAD
    return out


def histogram(values: np.ndarray) -> dict[str, float | int | list[float]] | None:
    """The TensorBoard histogram of the finite ``values`` (None when there are none): numpy's
    ``HIST_BINS`` equal bins; ``bucket_limits`` are the bins' right edges."""
    v = values[np.isfinite(values)].astype(np.float64)
    if v.size == 0:
        return None
    counts, edges = np.histogram(v, bins=HIST_BINS)
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "num": int(v.size),
        "sum": float(v.sum()),
        "sum_squares": float(np.dot(v, v)),
        "bucket_limits": edges[1:].tolist(),
        "bucket_counts": counts.tolist(),
    }


def _patterns_of(run: Run, layer: str, epoch: int | None, patterns: Sequence[int], summary):
    """``(pattern, values)`` of the exported patterns captured for ``layer`` at ``epoch``;
    a damaged file's patterns are left out and named in ``summary.damaged``."""
    for entry in run.chunks(layer, epoch):
        inside = [p for p in patterns if entry.first <= p < entry.first + entry.count]
        if not inside:
            continue
        try:
            arr = run.load(entry, check=True)
        except DamagedDataError as exc:
            log.warning("%s: %s left out (%s)", run.path, entry.path, exc.reason)
            summary.damaged.append(entry.path)
            continue
        for p in inside:
            yield p, np.asarray(arr[p - entry.first])


def _write_metrics(writer, run: Run, summary: ExportSummary) -> None:
    for line in run.metrics():
        if line.get("scope", "epoch") != "epoch" or not isinstance(line.get("epoch"), int):
            continue
        for name, value in line.items():
            if name in ("epoch", "step", "time", "scope"):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(tag(f"metrics/{name}"), float(value), line["epoch"])
                summary.scalars += 1


def export_tensorboard(
    run: str | Path | Run,
    logdir: str | Path,
    patterns: str = DEFAULT_PATTERNS,
    cmap: str = "viridis",
    quiet: bool = False,
) -> ExportSummary:
    """Write the run's images, histograms and metrics as an event file under ``logdir``."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ConfigError(
            "passage export tensorboard needs the tensorboardX package, which is not "
            "installed; install it with `pip install tensorboardX`"
        ) from exc
    run = run if isinstance(run, Run) else open_run(run)
    picked = [
        p
        for p in select_patterns(patterns, run.num_patterns, DEFAULT_PATTERNS)
        if p < run.num_patterns
    ]
    table = lut(cmap)
    summary = ExportSummary(logdir=Path(logdir), patterns=picked)
    summary.logdir.mkdir(parents=True, exist_ok=True)
    work = len(run.epochs) * len(run.layers)
    writer = SummaryWriter(logdir=str(summary.logdir), flush_secs=3600)
    try:
        with tqdm(total=work, unit="layer", desc="export", disable=quiet, leave=False) as bar:
            for epoch in run.epochs:
                step = 0 if epoch is None else int(epoch)
                for layer in run.layers:
                    seen = []
                    for p, values in _patterns_of(run, layer, epoch, picked, summary):
                        rgb = colorize(*picture(values), table)
                        writer.add_image(image_tag(p, layer), rgb, step, dataformats="HWC")
                        summary.images += 1
                        seen.append(values.astype(np.float32).reshape(-1))
                    hist = histogram(np.concatenate(seen)) if seen else None
                    if hist is not None:
                        writer.add_histogram_raw(histogram_tag(layer), global_step=step, **hist)
                        summary.histograms += 1
                    bar.update(1)
            _write_metrics(writer, run, summary)
    finally:
        writer.close()
    return summary
