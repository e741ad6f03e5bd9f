"""Batch capture: stream patterns through the probe, one forward pass per batch, and hand the
layers' outputs to the queued writer, which prepares their files at once and writes them on
background threads. RAM is bounded by the batch size and the queue length, not by the number
of patterns; a rerun resumes from what the manifest holds."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..config import CaptureConfig, Config
from ..store import RUN_JSON, QueuedWriter, Run, RunWriter, open_run
from ..store.naming import input_key
from ..store.runinfo import read_run_json
from .diagram import ensure_architecture
from .identity import (
    RunDescription,
    arrays_digest,
    describe_run,
    fingerprint,
    image_parts,
    weights_digest,
)
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
from .patterns.preprocess import notice_preprocess
from .pending import Pending, pending_batches
from .probe import Probe, layer_infos
from .selection import LayerInfo, select_layers

log = logging.getLogger(__name__)


DEFAULT_BATCH = 256  # when an output's size per pattern is not known (None axes)
MAX_BATCH = 8192


def pattern_bytes(selected: Sequence[LayerInfo], dtype: str) -> int | None:
    """Bytes the ``selected`` layers' outputs of one pattern take stored as ``dtype``; None
    when an output's size is not fixed (``None`` axes)."""
    itemsize = np.dtype(dtype).itemsize
    per_pattern = 0
    for info in selected:
        if any(d is None for d in info.shape):
            return None
        per_pattern += math.prod(info.shape) * itemsize  # type: ignore[arg-type]
    return per_pattern


def choose_batch_size(
    selected: Sequence[LayerInfo], dtype: str, budget: int, count: int | None = None
) -> int:
    """Patterns per batch for ``[capture] batch_size = 0``: the largest power of two (1 to
    ``MAX_BATCH``) whose selected layers' outputs, stored as ``dtype``, fit in ``budget``
    bytes. Larger batches spread the fixed costs of a forward pass and of each file over more
    patterns; the budget bounds the memory of a batch in flight (the writer holds
    ``queue_size + 1`` of them). ``DEFAULT_BATCH`` when a size per pattern is unknown. With
    ``count`` (the patterns there are), never more than that."""
    per_pattern = pattern_bytes(selected, dtype)
    if per_pattern is None:
        size = DEFAULT_BATCH
    else:
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


@dataclass
class CapturePlan:
    """What one batch capture is, settled before its run folder is claimed: the model, its
    pattern source and selected layers, the batch size and run.json (``run``), the kept
    inputs' stored keys (``inputs``). ``probe`` is the model's probe when it was built and
    tried already (a new run), else None."""

    config: Config
    model: Any
    source: PatternSource
    selected: list[LayerInfo]
    batch_size: int
    run: RunDescription
    inputs: list[str]
    probe: Probe | None

    @property
    def out(self) -> Path:
        return Path(self.config.capture.out)

    @property
    def names(self) -> list[str]:
        """The manifest names of every file a batch writes: layers, then kept inputs."""
        return [info.name for info in self.selected] + self.inputs


# Writes the batches a capture still lacks (``todo``, in pattern order) through ``writer``:
# ``stream_batches`` in this process, or a cluster's runner (pipeline.distributed).
BatchRunner = Callable[[CapturePlan, RunWriter, list[Pending], bool], None]


def capture(config: Config, quiet: bool = False) -> Run:
    """Capture as ``config`` says (model and patterns from their specs)."""
    model = load_model(config.capture.model, unsafe=config.capture.unsafe)
    return capture_model(model, config, quiet=quiet)


def capture_model(
    model: Any,
    config: Config,
    patterns: Any = None,
    quiet: bool = False,
    runner: BatchRunner | None = None,
) -> Run:
    """Capture ``model`` over ``patterns`` (in-memory arrays) or the config's pattern spec;
    ``runner`` writes the batches (default: this process, ``stream_batches``)."""
    plan = plan_capture(model, config, patterns)
    c = config.capture
    out = plan.out
    writer = RunWriter(
        out,
        plan.run.run_json(),
        fmt=c.format,
        dtype=c.dtype,
        overwrite=c.overwrite,
        durable=c.fsync,
        direct_io=c.direct_io,
    )
    with writer:
        if c.architecture:
            ensure_architecture(model, out)
        todo = pending_batches(writer, plan.names, None, plan.source.count, plan.batch_size)
        if todo:
            (runner or stream_batches)(plan, writer, todo, quiet)
        else:
            log.info("%s is complete already; nothing to capture", writer.root)
    if todo:
        log.info(
            "captured %d pattern(s) x %d layer(s)%s into %s",
            plan.source.count,
            len(plan.selected),
            f" and {len(plan.inputs)} input(s)" if plan.inputs else "",
            out,
        )
    return open_run(out)


def plan_capture(model: Any, config: Config, patterns: Any = None) -> CapturePlan:
    """Settle what capturing ``model`` over ``patterns`` (or the config's spec) is: source,
    layers, batch size and run.json; a new run's probe is built and tried on one pattern."""
    c = config.capture
    shapes = input_shapes(model)
    names = input_names(model)
    source = (
        load_patterns(c.patterns, shapes, names, c.inputs, c.limit, c.preprocess, c.resize)
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
    identity.update(image_parts(c.preprocess, c.resize))
    notice_preprocess(model.name, source.kind, c.preprocess)
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
            "config": recorded_config(config),
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
        probe(source.feed(source.batch(0, 1)))
    if not c.batch_size and not c.overwrite:  # chosen by budget: a run begun with another
        batch_size = resumed_batch_size(out, run.parts, batch_size)  # size resumes with its own
        run.info["batch_size"] = run.parts["batch"] = batch_size
    inputs = [input_key(rec["name"]) for rec in kept]
    return CapturePlan(config, model, source, list(selected), batch_size, run, inputs, probe)


def recorded_config(config: Config) -> dict[str, Any]:
    """The config as run.json keeps it: what was captured, not where it ran (no ``dask``)."""
    data = config.to_dict()
    data.pop("dask", None)
    return data


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


def stream_batches(plan: CapturePlan, writer: RunWriter, todo: list[Pending], quiet: bool) -> None:
    """Capture the batches ``todo`` in this process, into the run's queued writer."""
    queued = QueuedWriter(writer, maxsize=plan.config.capture.queue_size)
    bar = progress(plan.source.count, todo, quiet)
    try:
        pass_batches(
            plan.probe or Probe(plan.model, plan.selected),
            [info.name for info in plan.selected],
            plan.source,
            queued,
            todo,
            plan.inputs,
            input_dtypes(plan.model) if plan.inputs else [],
            lambda batch: bar.update(batch.size),
        )
    finally:
        bar.close()
        queued.close()


def pass_batches(
    probe: Probe,
    layers: Sequence[str],
    source: PatternSource,
    queued: QueuedWriter,
    todo: Sequence[Pending],
    inputs: Sequence[str] = (),
    dtypes: Sequence[np.dtype] = (),
    done: Callable[[Pending], object] = lambda batch: None,
) -> None:
    """One forward pass per batch of ``todo``: the outputs of ``layers`` (the probe's, in its
    order) and the kept ``inputs`` (stored as ``dtypes``) that a batch still lacks, handed to
    ``queued``; ``done(batch)`` once a batch is prepared. The next batch's patterns load while
    one is prepared."""
    patterns = source.batch(todo[0].first, todo[0].size)
    for i, batch in enumerate(todo):
        outputs = probe(source.feed(patterns))  # kept inputs: as read (images in [0, 1])
        items = [
            (name, None, batch.first, out)
            for name, out in zip(layers, outputs, strict=True)
            if name in batch.missing
        ]
        if inputs:
            items += input_items(inputs, dtypes, patterns, batch.first, batch.missing)
        queued.submit(items, wait=False)
        del outputs, items  # the model's memory is free again once its batch is prepared
        if i + 1 < len(todo):  # load the next patterns while this batch is prepared
            patterns = source.batch(todo[i + 1].first, todo[i + 1].size)
        queued.join()
        done(batch)


def progress(count: int, todo: Sequence[Pending], quiet: bool) -> tqdm:
    """The capture's progress bar over ``count`` patterns, the ones not in ``todo`` done."""
    return tqdm(
        total=count,
        initial=count - sum(batch.size for batch in todo),
        unit="pattern",
        desc="capture",
        disable=quiet,
        dynamic_ncols=True,
    )
