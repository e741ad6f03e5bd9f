"""Place the architecture diagram that capture drew into the run (no TensorFlow needed)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..errors import GRAPHVIZ_HINT
from ..store import Run

log = logging.getLogger(__name__)


def place_architecture(run: Run, out: Path) -> Path | None:
    """Copy ``model.png`` (or the ``model.txt`` fallback) from the run into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    png, txt = run.path / "model.png", run.path / "model.txt"
    if png.is_file():
        shutil.copyfile(png, out / "model.png")
        return out / "model.png"
    if txt.is_file():
        shutil.copyfile(txt, out / "model.txt")
        log.info(
            "architecture diagram unavailable, wrote model.txt; for model.png %s, then capture "
            "again",
            GRAPHVIZ_HINT,
        )
        return out / "model.txt"
    log.info("the run holds no architecture drawing (captured with architecture = false)")
    return None
