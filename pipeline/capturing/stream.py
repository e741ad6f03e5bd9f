"""Batch capture: stream patterns through the probe, one forward pass per batch, and hand the
layers' outputs to the queued writer, which prepares their files at once and writes them on
background threads. RAM is bounded by the batch size and the queue length, not by the number
of patterns; a rerun resumes from what the manifest holds."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..config import CaptureConfig, Config
from ..store import RUN_JSON, QueuedWriter, Run, RunWriter, open_run
from ..store.naming import input_key
from ..store.runinfo import read_run_json
from .diagram import ensure_architecture
from .identity import arrays_digest, describe_run, fingerprint, weights_digest
from .inputs import input_names, input_shapes
from .kept_inputs import (
    check_apart,
    drop_inputs,
    input_dtypes,
    input_items,
    input_records,
    keeps_inputs,
    resumes_without_inputs,
)
from .models import load_model
from .patterns import PatternSource, array_source, limited, load_patterns
from .pending import pending_batches
from .probe import Probe, layer_infos
from .selection import LayerInfo, select_layers

log = logging.getLogger(__name__)


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
    model_spec = c.model if patterns is None else f"<in-memory {model.name}>"
    digest = weights_digest(model)
    identity: dict[str, Any] = {
        "model": model_spec,
        "weights": digest,
        "patterns": source.spec,
        "batch": batch_size,
        "data": arrays_digest(source.arrays) if patterns is not None else None,
    }
    if source.names is not None:  # image files: a renamed or added file is another run
        identity["sources"] = source.names
    kept = input_records(model, c.dtype) if keeps_inputs(c.keep_inputs, source) else []
    check_apart(kept, selected)
    run = describe_run(
        model,
        source,
        selected,
        mode="batch",
        model_spec=model_spec,
        patterns=source.spec,
        batch_size=batch_size,
        fmt=c.format,
        dtype=c.dtype,
        details={
            "input_names": names,
            "sources": source.record(),
            "weights_crc32": digest,
            "config": config.to_dict(),
        },
        identity=identity,
        inputs=kept,
    )
    out = Path(c.out)
    if c.keep_inputs is None and kept and not c.overwrite:  # unset: a run begun without
        held = read_run_json(out / RUN_JSON, lenient=True)  # inputs resumes without them
        if resumes_without_inputs(held, run, any_batch=not c.batch_size):
            log.info("%s was begun without its inputs: resuming without them", out)
            kept = drop_inputs(run)
    probe = None
    if c.overwrite or not (out / RUN_JSON).exists():
        # Built and tried on one pattern before the run folder is claimed: a model Keras
        # cannot run stops here (ModelRunError) and leaves no half-written run behind. A run
        # being resumed ran already; its probe is built only if something is left to do.
        probe = Probe(model, selected)
        probe(source.batch(0, 1))
    if not c.batch_size and not c.overwrite:  # chosen by budget: a run begun with another
        batch_size = resumed_batch_size(out, run.parts, batch_size)  # size resumes with its own
        run.info["batch_size"] = run.parts["batch"] = batch_size
    writer = RunWriter(
        out,
        run.run_json(),
        fmt=c.format,
        dtype=c.dtype,
        overwrite=c.overwrite,
        durable=c.fsync,
        direct_io=c.direct_io,
    )
    with writer:
        if c.architecture:
            ensure_architecture(model, out)
        inputs = [input_key(rec["name"]) for rec in kept]
        done = _stream(
            model, probe, selected, source, writer, batch_size, c.queue_size, quiet, inputs
        )
    if done:
        log.info(
            "captured %d pattern(s) x %d layer(s)%s into %s",
            source.count,
            len(selected),
            f" and {len(kept)} input(s)" if kept else "",
            out,
        )
    return open_run(out)


def resumed_batch_size(out: Path, parts: dict[str, Any], chosen: int) -> int:
    """The batch size of the run already in ``out`` when it is this capture in all but the
    batch size (begun with another ``batch_mb``, or by a version with another default), so
    that it resumes in its own file layout; otherwise ``chosen``."""
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
    probe: Probe | None,
    selected: Sequence[LayerInfo],
    source: PatternSource,
    writer: RunWriter,
    batch_size: int,
    queue_size: int,
    quiet: bool,
    inputs: Sequence[str] = (),
) -> bool:
    """Capture the batches the run lacks: the ``selected`` layers' outputs and the model
    inputs kept as ``inputs`` (their manifest names ``input:<name>``, in input order).
    False when there was nothing left to capture."""
    names = [info.name for info in selected] + list(inputs)
    todo = pending_batches(writer, names, None, source.count, batch_size)
    if not todo:
        log.info("%s is complete already; nothing to capture", writer.root)
        return False
    probe = probe or Probe(model, selected)
    dtypes = input_dtypes(model) if inputs else []
    queued = QueuedWriter(writer, maxsize=queue_size)
    bar = tqdm(
        total=source.count,
        initial=source.count - sum(batch.size for batch in todo),
        unit="pattern",
        desc="capture",
        disable=quiet,
        dynamic_ncols=True,
    )
    try:
        patterns = source.batch(todo[0].first, todo[0].size)
        for i, batch in enumerate(todo):
            outputs = probe(patterns)
            items = [
                (info.name, None, batch.first, out)
                for info, out in zip(selected, outputs, strict=True)
                if info.name in batch.missing
            ]
            if inputs:
                items += input_items(inputs, dtypes, patterns, batch.first, batch.missing)
            queued.submit(items, wait=False)
            del outputs, items  # the model's memory is free again once its batch is prepared
            if i + 1 < len(todo):  # load the next patterns while this batch is prepared
                patterns = source.batch(todo[i + 1].first, todo[i + 1].size)
            queued.join()
            bar.update(batch.size)
    finally:
        bar.close()
        queued.close()
    return True
