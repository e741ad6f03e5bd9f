"""Draw a visualized (layer, epoch)'s pictures into the run, at the store's ``sheet_path``."""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import NotInRunError
from ...store import Run
from ...store.feature_files import sheet_path
from .sheets import draw_sheet
from .top import draw_top

log = logging.getLogger(__name__)


def draw_features(run: Run, layer: str, epoch: int | None = None) -> list[Path]:
    """Draw ``layer``'s sheet at ``epoch`` (None: its last visualized epoch) and, when its top
    patterns were attributed, its top-patterns picture; returns the pictures' paths.
    ``NotInRunError`` when the layer was not visualized at that epoch."""
    features = run.features_of(layer, epoch)
    epoch = features.get("epoch")
    folder = run.layer(layer).dir
    pictures = [draw_sheet(features, layer, sheet_path(run.path, folder, epoch), epoch)]
    try:
        out = sheet_path(run.path, folder, epoch, "top")
        pictures.append(draw_top(run, layer, epoch, out, features=features))
    except NotInRunError as exc:
        log.info("%s: no top-patterns picture (%s)", layer, exc)
    return pictures
