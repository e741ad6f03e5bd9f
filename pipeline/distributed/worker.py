"""What runs on a Dask worker during a distributed capture.

``capture_task`` passes a task's batches through the model and writes their data files into
the run folder (a filesystem the client and every worker share), returning their manifest
entries: the client appends them. The model, its probe, the pattern source and the file
writer are built once per worker process and capture (``built``), not once per task.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..capturing.identity import weights_digest
from ..capturing.inputs import input_names, input_shapes
from ..capturing.kept_inputs import input_dtypes
from ..capturing.models import load_model
from ..capturing.patterns import PatternSource, load_patterns
from ..capturing.probe import Probe, layer_infos
from ..capturing.stream import pass_batches
from ..errors import SpecError
from ..store import EntryList, ManifestEntry, QueuedWriter
from ..store.chunk_files import DataFiles
from ..store.direct_io import FileWriter
from .capture_tasks import CaptureTask, WorkerSpec

log = logging.getLogger(__name__)


@dataclass
class Built:
    """One capture's model, probe and pattern source in this worker process."""

    probe: Probe
    source: PatternSource
    layers: tuple[str, ...]
    dtypes: list[Any]


@dataclass(frozen=True)
class TaskResult:
    """A finished task: its files' manifest entries in the order a local capture writes them,
    and which process ran it (``built``: it built the model first, in ``build_s`` seconds)."""

    index: int
    entries: tuple[ManifestEntry, ...]
    worker: str
    built: bool
    build_s: float
    seconds: float


BUILDS = 0  # models built in this process (tests read it through Client.run)
_LOCK = threading.Lock()
_BUILT: dict[tuple, Built] = {}
_FILES: dict[WorkerSpec, DataFiles] = {}


def files_of(spec: WorkerSpec) -> DataFiles:
    """The run's file writer in this process, kept from task to task (its buffers are
    reused); it makes its folders again each task, since the run folder may have been
    removed and captured again (``--overwrite``) meanwhile."""
    with _LOCK:
        files = _FILES.get(spec)
        if files is None:
            _FILES.clear()
            files = _FILES[spec] = _files(spec)
        files.forget_folders()
        return files


def warm_up() -> str:
    """Import TensorFlow and Keras in this worker process (a task sent to each worker while
    the client still loads the model, so both imports happen at once)."""
    from ..capturing.framework import keras_and_tf

    keras_and_tf()
    return f"{socket.gethostname()}:{os.getpid()}"


def built(spec: WorkerSpec) -> tuple[Built, float]:
    """This process's model, probe and source for ``spec`` and the seconds building took now
    (0: held already). One model is held at a time: another replaces it."""
    global BUILDS
    with _LOCK:
        held = _BUILT.get(spec.model_key)
        if held is not None:
            return held, 0.0
        _BUILT.clear()
        start = time.perf_counter()
        held = _BUILT[spec.model_key] = _build(spec)
        BUILDS += 1
        return held, time.perf_counter() - start


def _files(spec: WorkerSpec) -> DataFiles:
    return DataFiles(
        Path(spec.root),
        dict(spec.folders),
        spec.fmt,
        np.dtype(spec.dtype),
        FileWriter(direct=spec.direct_io, durable=spec.durable),
        dict(spec.input_folders),
    )


def _build(spec: WorkerSpec) -> Built:
    model = load_model(spec.model, unsafe=spec.unsafe)
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    if weights_digest(model) != spec.weights:
        raise SpecError(
            f"model {spec.model!r} built on worker {where} has other weights than on the "
            "client: its factory is not deterministic. Save the model (model.save('m.keras')) "
            "and capture with --model m.keras"
        )
    infos = {info.name: info for info in layer_infos(model)}
    missing = [name for name in spec.layers if name not in infos]
    if missing:
        raise SpecError(f"model {spec.model!r} on worker {where} lacks layers {missing}")
    selected = [infos[name] for name in spec.layers]
    source = load_patterns(
        spec.patterns,
        input_shapes(model),
        input_names(model),
        dict(spec.inputs),
        spec.limit,
        spec.preprocess,
        spec.resize,
    )
    dtypes = input_dtypes(model) if spec.kept else []
    return Built(Probe(model, selected), source, spec.layers, dtypes)


def capture_task(spec: WorkerSpec, task: CaptureTask) -> TaskResult:
    """Capture ``task``'s batches and write their files; their manifest entries."""
    start = time.perf_counter()
    held, build_s = built(spec)
    sink = EntryList(files_of(spec))
    queued = QueuedWriter(sink, maxsize=spec.queue_size)
    try:
        pass_batches(
            held.probe, held.layers, held.source, queued, task.batches, spec.kept, held.dtypes
        )
    finally:
        queued.close()
    return TaskResult(
        task.index,
        tuple(sink.entries),
        f"{socket.gethostname()}:{os.getpid()}",
        build_s > 0,
        build_s,
        time.perf_counter() - start,
    )


def builds() -> int:
    """Models this worker process has built (``Client.run(builds)``: one per worker and
    capture, whatever the number of tasks)."""
    return BUILDS
