"""Shared check of the architecture drawing: ``model.png`` is a real PNG of the given model.

With Graphviz's ``dot`` (CI installs it) the picture is Keras' own ``plot_model``; without it,
Passage's matplotlib drawing is checked instead and the test is reported as skipped, with the
install hint (a failure under ``PASSAGE_TEST_STRICT``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from externals import GRAPHVIZ_HINT, missing_later
from PIL import Image


def _summary_lists_every_layer(folder: Path, model: object) -> None:
    summary = (folder / "model.txt").read_text(encoding="utf-8")
    assert "Param #" in summary and all(layer.name in summary for layer in model.layers)  # type: ignore[attr-defined]


def assert_model_png(folder: Path, model: object, tmp: Path) -> None:
    """``folder/model.png`` is Keras' own drawing of ``model`` where Graphviz and pydot are
    installed, else Passage's matplotlib drawing; the model summary (every column) beside it in
    ``model.txt`` either way."""
    from pipeline.capturing.diagram import graphviz_available
    from pipeline.capturing.diagram.draw import BOX_COLORS

    png = folder / "model.png"
    assert png.is_file(), f"no model.png in {folder}: {sorted(p.name for p in folder.iterdir())}"
    _summary_lists_every_layer(folder, model)
    with Image.open(png) as img:
        assert img.format == "PNG"
        width, height = img.size
        pixels = np.asarray(img.convert("RGB")).astype(int)
    if not graphviz_available():
        # Passage's own drawing: its palette (the input box's colour) and one box per layer
        rgb = [int(BOX_COLORS["input"][i : i + 2], 16) for i in (1, 3, 5)]
        assert (np.abs(pixels - rgb).max(axis=-1) <= 2).any(), "no input box in model.png"
        assert height > 40 * len(model.layers), (width, height)  # type: ignore[attr-defined]
        missing_later(f"{GRAPHVIZ_HINT}: checked Passage's matplotlib model.png, not plot_model's")
        return
    import keras

    n_layers = len(model.layers)  # type: ignore[attr-defined]
    # One box per layer in a column: a tall picture, more than 100 px per layer.
    assert height > width > 200 and height > 100 * n_layers, (width, height)
    # The same picture as Keras draws with shapes and names (a shapeless one is much narrower).
    reference = tmp / "reference-model.png"
    keras.utils.plot_model(
        model, to_file=str(reference), show_shapes=True, show_layer_names=True, expand_nested=True
    )
    with Image.open(reference) as ref:
        assert (width, height) == ref.size
