"""What a run is: its run.json (``describe_run``, one builder for batch capture and the training
callback) and its fingerprint, the hash of what must match for a later capture to resume it.

Each mode names its own identifying parts (batch capture: the model spec and weights, the
pattern spec, the batch size, how images are resized and preprocessed; training: the model
structure, the watched patterns' bytes and the record schedule, never the weights); every
run is identified by its layers, its pattern count and its storage options as well. A
fingerprint never changes for the same parts, so runs written earlier keep resuming. run.json
also holds one digest per part (``identity``), so that a refused resume can say which part
differs (``pipeline.store.refusal``).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .. import __version__
from ..config import RESIZES
from ..store.crc import crc32
from ..store.naming import layer_dir
from .framework import keras_and_tf
from .inputs import input_shapes
from .patterns import PatternSource
from .selection import LayerInfo


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
    """The versions run.json records (Passage, TensorFlow, Keras, NumPy, Python)."""
    keras, tf = keras_and_tf()
    return {
        "passage": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def layer_records(selected: Sequence[LayerInfo]) -> list[dict[str, Any]]:
    """run.json's ``layers``: index, name, class, per-pattern shape and data folder of each."""
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


def image_parts(preprocess: str, resize: str) -> dict[str, str]:
    """The identity parts of how image folders are fed (``--preprocess``, ``--resize``): none
    for the defaults, so that runs begun before these options existed keep resuming."""
    parts = {"preprocess": preprocess} if preprocess else {}
    if resize != RESIZES[0]:
        parts["resize"] = resize
    return parts


STORED_INPUTS = "stored_inputs"  # run.json's key for kept model inputs, and their part


def fingerprint(parts: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over ``parts`` as sorted-key JSON."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def part_digests(parts: dict[str, Any]) -> dict[str, str]:
    """run.json's ``identity``: 16 hex digits of SHA-256 per part of the fingerprint."""
    return {
        name: hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
        for name, value in parts.items()
    }


@dataclass
class RunDescription:
    """A run's run.json without its fingerprint (``info``) and what the fingerprint hashes
    (``parts``). A capture that settles its batch size afterwards (a resume in the layout it
    was begun with) sets both, then takes ``run_json()``."""

    info: dict[str, Any]
    parts: dict[str, Any]

    def run_json(self) -> dict[str, Any]:
        return {
            **self.info,
            "fingerprint": fingerprint(self.parts),
            "identity": part_digests(self.parts),
        }


def describe_run(
    model: Any,
    source: PatternSource,
    selected: Sequence[LayerInfo],
    *,
    mode: str,
    model_spec: str,
    patterns: str,
    batch_size: int,
    fmt: str,
    dtype: str,
    details: dict[str, Any],
    identity: dict[str, Any],
    inputs: Sequence[dict[str, Any]] = (),
) -> RunDescription:
    """run.json of a capture of ``model`` over ``source`` into the layers ``selected``: what
    every run holds, then the mode's own ``details`` (which win over the common entries); the
    fingerprint hashes the layers, the pattern count and ``fmt``/``dtype``, then the mode's
    own ``identity`` parts (which win likewise). ``inputs``: the records of the model inputs
    stored with the run (``kept_inputs``), hashed too; none leaves run.json and fingerprint
    as runs without them always had them."""
    records = layer_records(selected)
    info: dict[str, Any] = {
        "mode": mode,
        "model": model_spec,
        "model_name": model.name,
        "inputs": [list(s) for s in input_shapes(model)],
        "layers": records,
        "patterns": patterns,
        "pattern_origin": source.origin,
        "num_patterns": source.count,
        "batch_size": batch_size,
        "versions": versions(),
        **details,
    }
    parts = {"layers": records, "count": source.count, "format": fmt, "dtype": dtype, **identity}
    if inputs:
        info[STORED_INPUTS] = parts[STORED_INPUTS] = [dict(r) for r in inputs]
    return RunDescription(info, parts)
