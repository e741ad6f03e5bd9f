"""The article's one call, for notebook users: capture then render, through the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import CaptureConfig, Config, RenderConfig, SelectConfig


def plot_pattern_process(
    model: Any,
    pattern: Any,
    folder: str | Path,
    grid_size: tuple[int, int] = (3, 3),
    limit_size_layer: tuple[int, int] = (15, 15),
    plot_model: bool = True,
) -> Path:
    """Draw how ``pattern`` passes through ``model`` into ``folder`` (the article's
    ``PLOT_PATTERN_PROCCESS``, same arguments and defaults).

    The run is stored in ``folder/run``; the pictures land in ``folder/pattern-0/*.png`` and,
    with ``plot_model``, ``folder/model.png`` (or ``model.txt`` without Graphviz). A second call
    on the same folder replaces the previous run. Returns ``folder``.
    """
    from .capturing.stream import capture_model
    from .rendering import render

    folder = Path(folder)
    config = Config(
        capture=CaptureConfig(
            model=f"<in-memory {getattr(model, 'name', 'model')}>",
            patterns="<array>",
            out=str(folder / "run"),
            architecture=plot_model,
            overwrite=True,
        ),
        select=SelectConfig(rule="seed", min_size=tuple(limit_size_layer)),
        render=RenderConfig(grid=tuple(grid_size)),  # type: ignore[arg-type]
    )
    run = capture_model(model, config, patterns=pattern, quiet=True)
    render(run, folder, grid=tuple(grid_size), quiet=True)  # type: ignore[arg-type]
    return folder
