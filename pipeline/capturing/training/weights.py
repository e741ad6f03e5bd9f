"""Weights kept per recorded epoch of a training run (``[train] keep_weights``), so that
``passage visualize`` can reload the model as it was at each record.

``RUN/weights/epoch-EEEE.weights.h5`` (E: the record's key, as the manifest's ``epoch``),
written through a temporary name and a rename: a file with its final name is complete. Not
part of the run's identity: a run recorded without them resumes unchanged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

WEIGHTS_DIR = "weights"
_NAME = re.compile(r"^epoch-(\d+)\.weights\.h5$")
_TMP = ".tmp-"  # temporary files start so (Keras wants the .weights.h5 suffix kept)


def weights_file(run_dir: str | Path, epoch: int) -> Path:
    """Where the weights of record ``epoch`` are kept."""
    return Path(run_dir) / WEIGHTS_DIR / f"epoch-{int(epoch):04d}.weights.h5"


def kept_epochs(run_dir: str | Path) -> dict[int, Path]:
    """Record key -> its complete weights file, sorted by key ({} when none are kept)."""
    folder = Path(run_dir) / WEIGHTS_DIR
    if not folder.is_dir():
        return {}
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := _NAME.match(p.name))}
    return dict(sorted(found.items()))


def save_weights(model: Any, run_dir: str | Path, epoch: int, durable: bool = False) -> Path:
    """Write ``model``'s weights as record ``epoch``'s, atomically (temporary name, rename);
    ``durable`` fsyncs the file and its folder."""
    final = weights_file(run_dir, epoch)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{_TMP}{os.getpid()}-{final.name}"
    model.save_weights(str(tmp), overwrite=True)
    if durable:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, final)
    if durable:
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return final


def remove_temporaries(run_dir: str | Path) -> int:
    """Delete the temporary weights files a killed training left; returns how many."""
    folder = Path(run_dir) / WEIGHTS_DIR
    if not folder.is_dir():
        return 0
    gone = 0
    for p in folder.iterdir():
        if p.name.startswith(_TMP):
            p.unlink(missing_ok=True)
            gone += 1
    return gone
