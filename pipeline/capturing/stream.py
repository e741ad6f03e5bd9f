"""Batch capture: stream patterns through the probe, one forward pass per batch, and hand the
layers' outputs to the queued writer, which prepares their files at once and writes them on
background threads. RAM is bounded by the batch size and the queue length, not by the number
of patterns; a rerun resumes from what the manifest holds."""

from __future__ import annotations

import hashlib
import logging
import math
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tqdm.auto import tqdm

from .. import __version__
from ..config import CaptureConfig, Config
from ..errors import PatternError
from ..store import RUN_JSON, QueuedWriter, Run, RunWriter, open_run
from ..store.crc import crc32
from ..store.naming import layer_dir
from .diagram import draw_architecture
from .framework import keras_and_tf
from .models import load_model
from .patterns import PatternSource, check_shapes, limited, load_patterns
from .probe import Probe, input_names, input_shapes, layer_infos
from .selection import LayerInfo, select_layers

log = logging.getLogger(__name__)


def arrays_digest(arrays: Iterable[Any]) -> str:
    """CRC-32 over the bytes of several arrays, as 8 hex digits."""
    crc = 0
    for a in arrays:
        crc = crc32(np.ascontiguousarray(np.asarray(a)), crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def weights_digest(model: Any) -> str:
    """CRC-32 over every weight: tells two models with the same structure apart."""
    return arrays_digest(model.weights)


def versions() -> dict[str, str]:
    keras, tf = keras_and_tf()
    return {
        "passage": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


DEFAULT_BATCH = 256  # when an output's size per pattern is not known (None axes)
MAX_BATCH = 8192


def choose_batch_size(
    selected: Sequence[LayerInfo], dtype: str, budget: int, count: int | None = None
) -> int:
    """Patterns per batch for ``[capture] batch_size = 0``: the largest power of two (1 to
    ``MAX_BATCH``) whose selected layers' outputs, stored as ``dtype``, fit in ``budget``
    bytes. Larger batches spread the fixed costs of a forward pass and of each file over more
    patterns; the budget bounds the memory of a batch in flight (the writer holds
    ``queue_size + 1`` of them). ``DEFAULT_BATCH`` when a size per pattern is unknown. With
    ``count`` (the patterns there are), never more than that."""
    itemsize = np.dtype(dtype).itemsize
    per_pattern = 0
    size = 0
    for info in selected:
        if any(d is None for d in info.shape):
            size = DEFAULT_BATCH
            break
        per_pattern += math.prod(info.shape) * itemsize  # type: ignore[arg-type]
    if not size:
        fits = budget // per_pattern if per_pattern else MAX_BATCH
        size = min(MAX_BATCH, 1 << (max(1, fits).bit_length() - 1))
    return size if count is None else min(size, max(1, count))


def resolve_batch_size(c: CaptureConfig, selected: Sequence[LayerInfo], count: int) -> int:
    """``[capture] batch_size``, or when it is 0 the size ``batch_mb`` allows (at most
    ``count``, the patterns there are)."""
    if c.batch_size:
        return c.batch_size
    size = choose_batch_size(selected, c.dtype, c.batch_mb << 20, count)
    log.info("%d pattern(s) per batch (outputs within %d MiB)", size, c.batch_mb)
    return size


def layer_records(selected: Sequence[LayerInfo]) -> list[dict[str, Any]]:
    return [
        {
            "index": info.index,
            "name": info.name,
            "class": info.class_name,
            "shape": list(info.shape),
            "dir": layer_dir(info.index, info.name),
        }
        for info in selected
    ]


def fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def array_source(patterns: Any, shapes: Sequence[tuple[int | None, ...]]) -> PatternSource:
    """Patterns given in memory (one array, or one per input)."""
    arrays = [
        np.asarray(a) for a in (patterns if isinstance(patterns, (list, tuple)) else [patterns])
    ]
    if len(arrays) == 1 and arrays[0].ndim == len(shapes[0]):
        arrays = [arrays[0][None]]  # a single pattern without its batch axis
    source = PatternSource(
        "<array>",
        int(arrays[0].shape[0]),
        [tuple(a.shape[1:]) for a in arrays],
        arrays=arrays,
        origin="array",
        kind="array",
    )
    if len(arrays) != len(shapes):
        raise PatternError(
            f"{len(arrays)} pattern array(s) given; the model has {len(shapes)} inputs"
        )
    check_shapes("<array>", source.shapes, shapes)
    if source.count == 0:
        raise PatternError("zero patterns given; expected at least one")
    return source


def capture(config: Config, quiet: bool = False) -> Run:
    """Capture as ``config`` says (model and patterns from their specs)."""
    model = load_model(config.capture.model, unsafe=config.capture.unsafe)
    return capture_model(model, config, quiet=quiet)


def capture_model(model: Any, config: Config, patterns: Any = None, quiet: bool = False) -> Run:
    """Capture ``model`` over ``patterns`` (in-memory arrays) or the config's pattern spec."""
    c = config.capture
    shapes = input_shapes(model)
    names = input_names(model)
    source = (
        load_patterns(c.patterns, shapes, names, c.inputs, limit=c.limit)
        if patterns is None
        else limited(array_source(patterns, shapes), c.limit)
    )
    selected = select_layers(layer_infos(model), config.select)
    batch_size = resolve_batch_size(c, selected, source.count)
    records = layer_records(selected)
    model_spec = c.model if patterns is None else f"<in-memory {model.name}>"
    digest = weights_digest(model)
    info: dict[str, Any] = {
        "mode": "batch",
        "model": model_spec,
        "model_name": model.name,
        "inputs": [list(s) for s in shapes],
        "input_names": names,
        "layers": records,
        "patterns": source.spec,
        "pattern_origin": source.origin,
        "num_patterns": source.count,
        "sources": source.record(),
        "batch_size": batch_size,
        "weights_crc32": digest,
        "config": config.to_dict(),
        "versions": versions(),
    }
    parts: dict[str, Any] = {
        "model": model_spec,
        "weights": digest,
        "layers": records,
        "patterns": source.spec,
        "count": source.count,
        "batch": batch_size,
        "format": c.format,
        "dtype": c.dtype,
        "data": arrays_digest(source.arrays) if patterns is not None else None,
    }
    if source.names is not None:  # image files: a renamed or added file is another run
        parts["sources"] = source.names
    out = Path(c.out)
    if not c.batch_size and not c.overwrite:  # chosen by budget: a run begun with another
        batch_size = resumed_batch_size(out, parts, batch_size)  # size resumes with its own
        info["batch_size"] = parts["batch"] = batch_size
    info["fingerprint"] = fingerprint(parts)
    writer = RunWriter(
        out,
        info,
        fmt=c.format,
        dtype=c.dtype,
        overwrite=c.overwrite,
        durable=c.fsync,
        direct_io=c.direct_io,
    )
    with writer:
        if c.architecture and not ((out / "model.png").exists() or (out / "model.txt").exists()):
            draw_architecture(model, out)
        _stream(model, selected, source, writer, batch_size, c.queue_size, quiet)
    log.info("captured %d pattern(s) x %d layer(s) into %s", source.count, len(selected), out)
    return open_run(out)


def resumed_batch_size(out: Path, parts: dict[str, Any], chosen: int) -> int:
    """The batch size of the run already in ``out`` when it is this capture in all but the
    batch size (begun with another ``batch_mb``, or by a version with another default), so
    that it resumes in its own file layout; otherwise ``chosen``."""
    from ..store.runinfo import read_run_json

    held = read_run_json(out / RUN_JSON, lenient=True) or {}  # checked: a size is an int >= 1
    size = held.get("batch_size")
    if size is None or size == chosen:
        return chosen
    if held.get("fingerprint") != fingerprint({**parts, "batch": size}):
        return chosen
    log.info("%s was begun with %d pattern(s) per batch: resuming with that size", out, size)
    return size


def _stream(
    model: Any,
    selected: Sequence[LayerInfo],
    source: PatternSource,
    writer: RunWriter,
    batch_size: int,
    queue_size: int,
    quiet: bool,
) -> None:
    names = [info.name for info in selected]
    todo_batches = []
    done_patterns = 0
    for first in range(0, source.count, batch_size):
        size = min(batch_size, source.count - first)
        missing = [n for n in names if not writer.has(n, None, first)]
        if missing:
            todo_batches.append((first, size, missing))
        else:
            done_patterns += size
    if not todo_batches:
        log.info("%s is complete already; nothing to capture", writer.root)
        return
    probe = Probe(model, selected)
    queued = QueuedWriter(writer, maxsize=queue_size)
    bar = tqdm(
        total=source.count,
        initial=done_patterns,
        unit="pattern",
        desc="capture",
        disable=quiet,
        dynamic_ncols=True,
    )
    try:
        patterns = source.batch(*todo_batches[0][:2])
        for i, (first, size, missing) in enumerate(todo_batches):
            outputs = probe(patterns)
            items = [(n, None, first, out) for n, out in zip(names, outputs, strict=True)]
            queued.submit([item for item in items if item[0] in missing], wait=False)
            del outputs, items  # the model's memory is free again once its batch is prepared
            if i + 1 < len(todo_batches):  # load the next patterns while this batch is prepared
                patterns = source.batch(*todo_batches[i + 1][:2])
            queued.join()
            bar.update(size)
    finally:
        bar.close()
        queued.close()
