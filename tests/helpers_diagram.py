"""Shared check of the architecture drawing: ``model.png`` is a real PNG of the given model."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def assert_model_png(folder: Path, model: object, tmp: Path) -> None:
    """``folder/model.png`` is Keras' own drawing of ``model`` (Graphviz and pydot installed: CI
    installs them), with the model summary (every column) beside it in ``model.txt``."""
    import keras

    from pipeline.capturing.diagram import graphviz_available

    assert graphviz_available(), "these tests need pydot and Graphviz's `dot` on the PATH"
    png = folder / "model.png"
    assert png.is_file(), f"no model.png in {folder}: {sorted(p.name for p in folder.iterdir())}"
    summary = (folder / "model.txt").read_text(encoding="utf-8")
    assert "Param #" in summary and all(layer.name in summary for layer in model.layers)  # type: ignore[attr-defined]
    assert png.stat().st_size > 0
    with Image.open(png) as img:
        assert img.format == "PNG"
        width, height = img.size
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
