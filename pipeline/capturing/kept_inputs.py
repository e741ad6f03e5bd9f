"""Model inputs kept with a run (``--keep-inputs``): which captures keep them, their run.json
records, and each batch's input files beside the layers' ones.

Each model input is stored per pattern like a layer output (same codecs, checksums, manifest
lines, resume and verify), as the patterns were read (cast to the input's dtype): an image
folder's pictures in [0, 1], displayable, even when ``--preprocess`` feeds the model another
array (``PatternSource.feed``), under the manifest name ``input:<name>`` and the folder ``data/inputs/<epoch>/<index>-<name>/``; run.json
lists them in ``stored_inputs``, never in ``layers``. Unset (None), ``keep_inputs`` keeps them
for image-folder patterns only, and a run begun without them resumes without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SpecError
from ..store.naming import input_key, layer_dir
from ..store.prepare import stored_dtype
from .identity import STORED_INPUTS, RunDescription, fingerprint
from .inputs import describe_inputs
from .patterns import PatternSource
from .selection import LayerInfo


def keeps_inputs(setting: bool | None, source: PatternSource) -> bool:
    """``[capture] keep_inputs``, or when it is unset: whether a model input is fed from an
    image folder (then the pictures are worth showing beside what the layers made of them)."""
    if setting is not None:
        return setting
    return "images" in source.kind.split("+")


def input_dtypes(model: Any) -> list[np.dtype]:
    """The dtype of each model input: what the forward pass is fed."""
    return [i.dtype for i in describe_inputs(model)]


def input_records(model: Any, store_dtype: str) -> list[dict[str, Any]]:
    """run.json's ``stored_inputs``: position, name, per-pattern shape, stored dtype (floats
    as ``store_dtype``) and data folder of each model input."""
    described = describe_inputs(model)
    names = [i.name for i in described]
    if len(set(names)) != len(names):
        raise SpecError(
            f"model {model.name!r} has model inputs with the same name ({names}); expected "
            "distinct names to store them by: name the keras.Input(...) layers, or capture "
            "with --no-keep-inputs"
        )
    empty = np.dtype(store_dtype)
    return [
        {
            "index": i,
            "name": put.name,
            "shape": list(put.shape),
            "dtype": stored_dtype(np.empty(0, put.dtype), empty).name,
            "dir": layer_dir(i, put.name),
        }
        for i, put in enumerate(described)
    ]


def check_apart(records: Sequence[dict[str, Any]], selected: Sequence[LayerInfo]) -> None:
    """Refuse a selected layer whose name is a stored input's manifest name (``input:x``)."""
    clash = sorted({input_key(r["name"]) for r in records} & {i.name for i in selected})
    if clash:
        raise SpecError(
            f"layer(s) {clash} have the names Passage gives the stored model inputs; expected "
            "layer names that do not start with 'input:<input name>': rename the layer, drop it "
            "with --exclude, or capture with --no-keep-inputs"
        )


def resumes_without_inputs(
    held: dict[str, Any] | None, run: RunDescription, any_batch: bool
) -> bool:
    """Whether the run ``held`` in the output folder is this capture without its inputs (begun
    by a version without ``--keep-inputs``, or with ``--no-keep-inputs``): an unset
    ``keep_inputs`` then resumes it as it is. ``any_batch``: with the batch size it was begun
    with too (a batch size chosen by budget resumes with its own)."""
    if not held or STORED_INPUTS not in run.parts:
        return False
    bare = {k: v for k, v in run.parts.items() if k != STORED_INPUTS}
    sizes = [bare.get("batch")]
    if any_batch and held.get("batch_size") is not None:
        sizes.append(held["batch_size"])
    return any(held.get("fingerprint") == fingerprint({**bare, "batch": s}) for s in sizes)


def drop_inputs(run: RunDescription) -> list[dict[str, Any]]:
    """``run`` without stored inputs; the records it had no longer apply (returns ``[]``)."""
    run.info.pop(STORED_INPUTS, None)
    run.parts.pop(STORED_INPUTS, None)
    return []


def input_items(
    keys: Sequence[str],
    dtypes: Sequence[np.dtype],
    patterns: Sequence[np.ndarray],
    first: int,
    missing: frozenset[str],
) -> list[tuple[str, None, int, np.ndarray]]:
    """The writer's items for one batch's stored inputs (those still ``missing``): each
    input of ``patterns`` as read, before any ``--preprocess`` (what is shown)."""
    return [
        (key, None, first, np.asarray(x, dtype=dtype))
        for key, dtype, x in zip(keys, dtypes, patterns, strict=True)
        if key in missing
    ]
