"""The baselines, implemented faithfully.

- ``article_capture``: the article's method ported to Keras 3: for each pattern, for each
  selected layer, build ``keras.Model(inputs, layer.output)`` and ``predict`` one pattern;
  outputs are kept in a list.
- ``bare_forward``: the same multi-output probe that capture uses, on the same batches (drawn
  from the same ``PatternSource``), outputs fetched to numpy and discarded; no disk. The
  compute limit of a capture.
- ``article_render``: a new ``plt.subplots(2, 2, figsize=(10, 10))`` per grid, ``imshow`` +
  ``set_title`` per cell, ``savefig`` PNG, ``plt.close``.
- ``article_render_pages``: the same loop over every layer of a run on rows x cols pages, each
  output first turned into the image render shows (a channel mosaic, a near-square vector):
  the article's loop drawing the cells Passage draws.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.capturing.inputs import input_shapes
from pipeline.capturing.models import load_model
from pipeline.capturing.patterns import load_patterns
from pipeline.capturing.probe import Probe, layer_infos
from pipeline.capturing.selection import select_layers
from pipeline.capturing.stream import resolve_batch_size
from pipeline.config import Config
from pipeline.store import Run


def article_capture(model: Any, layer_names: Sequence[str], patterns: np.ndarray) -> float:
    """Seconds to capture ``patterns`` (N, *input_shape) the article's way."""
    import keras

    by_name = {layer.name: layer for layer in model.layers}
    outputs: list[np.ndarray] = []
    start = time.perf_counter()
    for pattern in patterns:
        for name in layer_names:
            intermediate = keras.Model(inputs=model.inputs, outputs=by_name[name].output)
            outputs.append(intermediate.predict(pattern[None], verbose=0))
    elapsed = time.perf_counter() - start
    assert len(outputs) == len(patterns) * len(layer_names)
    return elapsed


class BareForward:
    """The forward pass of a capture without the store: built once, timed per call."""

    def __init__(self, config: Config) -> None:
        c = config.capture
        self.config = config
        self.model = load_model(c.model)
        shapes = input_shapes(self.model)
        self.source = load_patterns(c.patterns, shapes)
        self.selected = select_layers(layer_infos(self.model), config.select)
        self.probe = Probe(self.model, self.selected)
        self.batch_size = resolve_batch_size(c, self.selected, self.source.count)

    @property
    def layer_names(self) -> list[str]:
        return [info.name for info in self.selected]

    def __call__(self) -> float:
        """Seconds for one pass over all patterns, batch by batch, as capture does it."""
        count, size = self.source.count, self.batch_size
        start = time.perf_counter()
        for first in range(0, count, size):
            for out in self.probe(self.source.batch(first, min(size, count - first))):
                del out
        return time.perf_counter() - start


def article_render(run: Run, out: Path, patterns: Sequence[int], dpi: int = 100) -> float:
    """Seconds to draw ``patterns`` as 2x2 grids of the run's layers, the article's way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    layers = run.layers[:4]
    start = time.perf_counter()
    for p in patterns:
        fig, axes = plt.subplots(2, 2, figsize=(10, 10))
        for ax, name in zip(axes.ravel(), layers, strict=False):
            ax.imshow(np.asarray(run.get(name, p)))
            ax.set_title(name)
        fig.savefig(out / f"pattern-{p}.png", dpi=dpi)
        plt.close(fig)
    return time.perf_counter() - start


def article_render_pages(
    run: Run, out: Path, patterns: Sequence[int], rows: int = 3, cols: int = 3, dpi: int = 100
) -> tuple[float, int]:
    """Seconds to draw every layer of ``patterns`` on ``rows`` x ``cols`` pages the article's
    way, and how many pages that was."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.rendering import layout

    out.mkdir(parents=True, exist_ok=True)
    layers = run.layers
    drawn = 0
    start = time.perf_counter()
    for p in patterns:
        for page, cells in enumerate(layout.pages(len(layers), rows, cols)):
            fig, axes = plt.subplots(rows, cols, figsize=(10, 10))
            for ax, i in zip(axes.ravel(), cells, strict=False):
                arr = np.asarray(run.get(layers[i], p))
                ax.imshow(layout.to_image(arr))
                ax.set_title(f"{layers[i]} {arr.shape}")
            fig.savefig(out / f"pattern-{p}-{page}.png", dpi=dpi)
            plt.close(fig)
            drawn += 1
    return time.perf_counter() - start, drawn
