"""A distributed capture cut into Dask tasks, and what every worker needs to run them (pure
logic: no Dask, no TensorFlow).

A task is a run of consecutive whole batches, so its data files are exactly those a local
capture writes. ``WorkerSpec`` is what all tasks of one capture share: hashable, it keys the
per-worker cache of model, probe and pattern source. Paths in it are absolute, since a
worker's working folder is not the client's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..capturing.pending import Pending

# With batches_per_task = 0 a task holds batches until its outputs reach this many bytes:
# a task costs the cluster a few milliseconds whatever its size, and a worker overlaps one
# batch's writing with the next batch's forward pass only within a task.
TASK_BYTES = 128 << 20


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds once per capture (model, probe, source, writer) and writes."""

    model: str
    unsafe: bool
    patterns: str
    inputs: tuple[tuple[str, str], ...]  # model input name -> .npz key
    limit: int
    weights: str  # the client's weights digest: the worker's model must match it
    layers: tuple[str, ...]  # selected layer names, in capture order
    kept: tuple[str, ...]  # stored input keys (input:<name>), in input order
    root: str
    fmt: str
    dtype: str
    direct_io: bool
    durable: bool
    queue_size: int
    folders: tuple[tuple[str, str], ...]  # layer -> data folder
    input_folders: tuple[tuple[str, str], ...]  # input:<name> -> data folder
    preprocess: str = ""  # [capture] preprocess and resize: how image folders are fed
    resize: str = "squash"

    @property
    def model_key(self) -> tuple:
        """What the model, probe and source depend on: another run folder of the same model
        and patterns (a second capture) reuses them."""
        return (
            self.model,
            self.unsafe,
            self.weights,
            self.layers,
            self.patterns,
            self.inputs,
            self.limit,
            self.preprocess,
            self.resize,
        )


@dataclass(frozen=True)
class CaptureTask:
    """Consecutive batches, each with the files it still lacks."""

    index: int
    batches: tuple[Pending, ...]

    @property
    def patterns(self) -> int:
        return sum(b.size for b in self.batches)

    @property
    def first(self) -> int:
        return self.batches[0].first


def batches_per_task(batch_bytes: int, setting: int = 0, target: int = TASK_BYTES) -> int:
    """``setting`` when set, else enough batches of ``batch_bytes`` to reach ``target``."""
    if setting > 0:
        return setting
    return max(1, math.ceil(target / max(1, batch_bytes)))


def cut_tasks(todo: Sequence[Pending], per_task: int, workers: int = 1) -> list[CaptureTask]:
    """``todo`` (batches in pattern order) as tasks of at most ``per_task`` consecutive
    batches: fewer when that leaves each of ``workers`` fewer than two tasks, so every
    worker gets work. The last ``2 x workers`` tasks hold one batch each, so the run does
    not end with one worker busy on a long task while the others wait."""
    per = max(1, min(per_task, len(todo) // max(1, 2 * workers) or 1))
    tail = min(len(todo), 2 * max(1, workers)) if per > 1 else 0
    body = len(todo) - tail
    groups = [todo[start : min(start + per, body)] for start in range(0, body, per)]
    groups += [[batch] for batch in todo[body:]]
    return [CaptureTask(i, tuple(group)) for i, group in enumerate(groups)]


def absolute_spec(spec: str, cwd: Path) -> str:
    """A model or pattern spec with its file paths made absolute against ``cwd`` (what a
    worker elsewhere can open); ``builtin:``, ``random:`` and importable ``module:function``
    specs are left as they are. Comma-separated specs are resolved part by part."""
    if "," in spec:
        return ",".join(absolute_spec(part.strip(), cwd) for part in spec.split(","))
    if spec.startswith(("builtin:", "random:")):
        return spec
    head, sep, tail = spec.rpartition(":")
    if sep and head and (head.endswith((".py", ".npz")) or "/" in head):
        return f"{_absolute(head, cwd)}:{tail}"  # path/file.py:function, file.npz:key
    if sep and head and not (cwd / spec).exists():
        return spec  # module:function
    return _absolute(spec, cwd)


def _absolute(path: str, cwd: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else cwd / p)
