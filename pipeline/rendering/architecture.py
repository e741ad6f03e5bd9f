"""Place the architecture diagram that capture drew into the render folder (no TensorFlow
needed): ``model.png`` with its continuation pages ``model-2.png``, ... if any, and the model
summary ``model.txt``."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from ..store import Run

log = logging.getLogger(__name__)

_PAGE = re.compile(r"model-([0-9]+)\.png")


def architecture_files(run_dir: Path) -> list[Path]:
    """The drawing's files in ``run_dir``: ``model.png``, its pages in order, ``model.txt``."""
    pages = sorted(
        (int(m.group(1)), p)
        for p in run_dir.glob("model-*.png")
        if (m := _PAGE.fullmatch(p.name)) and p.is_file()
    )
    first, summary = run_dir / "model.png", run_dir / "model.txt"
    return (
        ([first] if first.is_file() else [])
        + ([p for _, p in pages] if first.is_file() else [])
        + ([summary] if summary.is_file() else [])
    )


def place_architecture(run: Run, out: Path) -> Path | None:
    """Copy the run's drawing into ``out``; return ``model.png`` there (``model.txt`` for a run
    that holds only the summary), or None for a run captured without it."""
    out.mkdir(parents=True, exist_ok=True)
    files = architecture_files(run.path)
    for old in out.glob("model-*.png"):  # pages of an earlier render of a longer drawing
        if _PAGE.fullmatch(old.name):
            old.unlink()
    for path in files:
        shutil.copyfile(path, out / path.name)
    if not files:
        log.info("the run holds no architecture drawing (captured with architecture = false)")
        return None
    if files[0].name != "model.png":
        log.info("the run holds the model summary (model.txt) but no model.png")
    return out / files[0].name
