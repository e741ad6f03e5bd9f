"""Animations: one watched pattern's whole passage (every selected layer), one frame per
recorded epoch, as a GIF (matplotlib's Pillow writer) and an MP4 when ffmpeg is installed.

Each layer keeps one color scale over all frames (from the manifest's min/max, see
``timeline.layer_limits``), so frames are comparable; the frame title gives the pattern, the
epoch and the training loss at that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.animation import FFMpegWriter, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import layout
from ..grids import place_image

log = logging.getLogger(__name__)

FPS = 2
CELL_INCHES = 3.0


def ffmpeg_available() -> bool:
    return bool(FFMpegWriter.isAvailable())


class Animator:
    """A figure with one axes per layer, reused for every pattern's animation."""

    def __init__(
        self,
        titles: Sequence[str],
        limits: Sequence[tuple[float, float]],
        cmap: str = "viridis",
        dpi: int = 80,
    ) -> None:
        import matplotlib

        rows, cols = layout.near_square(len(titles))
        self.dpi = dpi
        self.fig = Figure(figsize=(cols * CELL_INCHES, rows * CELL_INCHES + 0.7), dpi=dpi)
        FigureCanvasAgg(self.fig)
        axes = list(self.fig.subplots(rows, cols, squeeze=False).ravel())
        for ax in axes[len(titles) :]:
            ax.set_visible(False)
        self.axes = axes[: len(titles)]
        for ax, title in zip(self.axes, titles, strict=True):
            ax.set_title(title, fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
        self.limits = list(limits)
        self.cmap = matplotlib.colormaps.get_cmap(cmap).with_extremes(bad="white")
        self.images: list[Any] = [None] * len(self.axes)
        self.title = self.fig.suptitle("")

    def show_frame(self, frame: Sequence[np.ndarray | None], title: str) -> None:
        for i, (ax, image) in enumerate(zip(self.axes, frame, strict=True)):
            data = np.ma.masked_invalid(
                image if image is not None else np.full((1, 1), np.nan, np.float32)
            )
            lo, hi = self.limits[i]
            self.images[i], _ = place_image(ax, self.images[i], data, self.cmap, lo, hi)
        self.title.set_text(title)

    def clims(self) -> list[tuple[float, float]]:
        """The color limits the images show now (tests check they never move)."""
        return [tuple(float(v) for v in im.get_clim()) for im in self.images if im is not None]

    def write(
        self,
        path: Path,
        frames: Sequence[Sequence[np.ndarray | None]],
        titles: Sequence[str],
        mp4: bool = False,
    ) -> list[Path]:
        """Write ``path`` (GIF), and ``path`` with suffix .mp4 when ``mp4``; one frame each."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writers: list[tuple[Any, Path]] = [(PillowWriter(fps=FPS), path)]
        if mp4:
            writers.append((FFMpegWriter(fps=FPS), path.with_suffix(".mp4")))
        written = []
        for writer, target in writers:
            with writer.saving(self.fig, str(target), self.dpi):
                for frame, title in zip(frames, titles, strict=True):
                    self.show_frame(frame, title)
                    writer.grab_frame()
            written.append(target)
        return written

    def close(self) -> None:
        self.fig.clear()
