"""The top-patterns picture of a layer: ``RUN/features/<layer dir>[.epoch-E].top.png``.

One row per channel (at most ``MAX_TOP``, the first ones; the title says when some are left
out): the channel's visualization, then its top-K patterns from ``analyze``, each with its
attribution (``display.attribution_mask``) laid over it as a semi-transparent overlay in
"hot" colours (dark red to yellow),
titled with the pattern index and the unit's activation on it. The visualization and the
patterns are drawn alike (RGB or grey for image/pixels spaces; grey on the space's [low,
high] for the "input" space) so they can be compared by eye.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...errors import NotInRunError
from ..analysis.canvas import save_figure
from . import display as dp
from . import geometry as geo
from .sheets import head_text, lut8, page_figure, paste, place_text, settings_of, space_of

log = logging.getLogger(__name__)

OVERLAY = "hot"
# the part of "hot" used: dark red (a weak mask) to yellow (the strongest), never black or
# white, so the overlay shows on dark and bright patterns alike
OVERLAY_PART = (0.2, 0.8)
ALPHA = 0.7  # the overlay's opacity where the mask is 1
MISSING = (235, 235, 235)  # an empty slot (fewer than K patterns)


def base_rgb(values: np.ndarray, space: str, low: float, high: float) -> np.ndarray:
    """A visualization or pattern as the picture shows it: (H, W, 3) in [0, 1]."""
    shown = dp.display_image(values, space, low, high)
    if space != "input":
        return shown
    return dp.grey_rgb(shown, *dp.value_limits(low, high, shown))


def pattern_rgb(
    values: np.ndarray, attribution: np.ndarray, space: str, low: float, high: float
) -> np.ndarray:
    """A top pattern with its attribution mask over it (``display.overlay``)."""
    mask = dp.attribution_mask(attribution, space)
    return dp.overlay(
        base_rgb(values, space, low, high), mask, lut8(OVERLAY, *OVERLAY_PART) / 255.0, ALPHA
    )


def _pixels(rgb: np.ndarray, zoom: dp.Zoom) -> np.ndarray:
    return dp.enlarge(dp.rgb8(dp.block_mean(rgb, zoom.step)), zoom)


def _rows(run: Any, layer: str, epoch: int | None, channels: Sequence[int]) -> list[dict | None]:
    rows: list[dict | None] = []
    for c in channels:
        try:
            rows.append(run.top_patterns(layer, int(c), epoch))
        except NotInRunError as exc:
            log.info("%s channel %d: no top patterns drawn (%s)", layer, c, exc)
            rows.append(None)
    return rows


def figure_top(
    run: Any,
    layer: str,
    epoch: int | None,
    channels: Sequence[int] | None = None,
    features: Mapping[str, Any] | None = None,
) -> Figure:
    """The top-patterns picture of ``layer`` at ``epoch`` (None: the last visualized) as a
    figure; ``channels``: which visualized channels (default all), the first ``MAX_TOP``
    drawn; ``features``: ``run.features_of(layer, epoch)`` when the caller has it.
    ``NotInRunError`` when none of them has top patterns."""
    if features is None:
        features = run.features_of(layer, epoch)
    epoch = features.get("epoch")
    settings = settings_of(features)
    space, low, high = space_of(settings)
    visualized = [int(c) for c in np.asarray(features["channels"])]
    at = {c: i for i, c in enumerate(visualized)}
    wanted = visualized if channels is None else [int(c) for c in channels]
    missing = [c for c in wanted if c not in at]
    if missing:
        raise NotInRunError(
            f"channels {missing} of layer {layer!r} were not visualized; visualized: "
            f"{visualized[0]}..{visualized[-1]} ({len(visualized)} channels)"
        )
    shown = wanted[: geo.MAX_TOP]
    rows = _rows(run, layer, epoch, shown)
    k = max((len(r["index"]) for r in rows if r is not None), default=0)
    if k == 0:
        raise NotInRunError(
            f"layer {layer!r}: no top patterns with attributions were stored for channels "
            f"{shown}; run `passage analyze`, then `passage visualize` again"
        )
    images = np.asarray(features["images"])
    activation = np.asarray(features["activation"], np.float64)
    dataset = np.asarray(features["dataset_activation"], np.float64)
    first = base_rgb(images[at[shown[0]]], space, low, high)
    zoom = dp.fit_zoom(*first.shape[:2], 112 if k <= 6 else 96)
    picture = zoom.size(*first.shape[:2])
    colours = "RGB" if first.ndim == 3 and np.asarray(images[0]).shape[-1] == 3 else "grey"
    colours = "grey" if space == "input" else colours
    title = geo.top_title(layer, epoch, shown, len(wanted), k, settings, colours)
    probe = geo.Grid(len(shown), k + 1, picture, 2, 0, geo.SPLIT)
    title = geo.wrap(title, probe.size[1] - 2 * geo.MARGIN)
    lines = title.count("\n") + 1
    grid = geo.Grid(len(shown), k + 1, picture, 2, geo.head_height(lines, extra_lines=1), geo.SPLIT)
    page = np.full((*grid.size, 3), 255, np.uint8)
    texts: list[tuple[tuple[float, float], str]] = []
    for r, c in enumerate(shown):
        i = at[c]
        paste(page, grid.origin(r, 0), _pixels(base_rgb(images[i], space, low, high), zoom))
        texts.append((grid.title_at(r, 0), geo.cell_title(c, activation[i], dataset[i])))
        top = rows[r]
        for j in range(k):
            o = grid.origin(r, j + 1)
            if top is None or j >= len(top["index"]) or int(top["index"][j]) < 0:
                paste(page, o, np.full((*picture, 3), MISSING, np.uint8))
                text = "no attribution" if top is None and j == 0 else "none"
            else:
                rgb = pattern_rgb(top["input"][j], top["attribution"][j], space, low, high)
                paste(page, o, _pixels(rgb, zoom))
                text = geo.pattern_title(int(top["index"][j]), float(top["value"][j]))
            texts.append((grid.title_at(r, j + 1), text))
    fig = page_figure(grid, page)
    head_text(fig, title)
    header_y = grid.head - 1
    place_text(fig, (header_y, grid.cell_x(0) + grid.cell_w / 2), "visualization",
               ha="center", va="bottom", fontsize=geo.TITLE_POINTS + 0.5, weight="bold")  # fmt: skip
    middle = (grid.cell_x(1) + grid.cell_x(k) + grid.cell_w) / 2
    place_text(fig, (header_y, middle), f"top {k} patterns, attribution overlaid",
               ha="center", va="bottom", fontsize=geo.TITLE_POINTS + 0.5, weight="bold")  # fmt: skip
    for where, text in texts:
        place_text(fig, where, text, ha="center", va="bottom", fontsize=geo.TITLE_POINTS,
                   linespacing=1.15)  # fmt: skip
    return fig


def draw_top(
    run: Any,
    layer: str,
    epoch: int | None,
    out: Path | str,
    channels: Sequence[int] | None = None,
    features: Mapping[str, Any] | None = None,
) -> Path:
    """Draw the top-patterns picture of ``layer`` to ``out`` (PNG, atomically)."""
    return save_figure(figure_top(run, layer, epoch, channels, features), out)
