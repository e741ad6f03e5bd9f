"""The article's one call, for notebook users: capture then render, through the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RULES, CaptureConfig, Config, RenderConfig, override


def _globs(value: str | Sequence[str]) -> tuple[str, ...]:
    """One name or several: ``"conv*"`` and ``["conv*"]`` alike."""
    return (value,) if isinstance(value, str) else tuple(value)


def plot_pattern_process(
    model: Any,
    pattern: Any,
    folder: str | Path,
    grid_size: tuple[int, int] = (3, 3),
    limit_size_layer: tuple[int, int] = (15, 15),
    plot_model: bool = True,
    *,
    select: str = RULES[0],
    include: str | Sequence[str] = (),
    exclude: str | Sequence[str] = (),
    classes: str | Sequence[str] = (),
) -> Path:
    """Draw how ``pattern`` passes through ``model`` into ``folder`` (the article's
    ``PLOT_PATTERN_PROCCESS``, same arguments and defaults).

    Layers are chosen as by ``passage capture``: ``select`` is the rule (``"maps"``, the
    default: outputs (H, W) or (H, W, C) whose H and W exceed ``limit_size_layer``, which on
    the article's model are the article's three layers, and a CNN's feature maps; ``"seed"``:
    the article's strict (H, W) rule; ``"all"``), then ``include`` / ``exclude`` name globs
    (``"block_1_*"``; nested names hold ``/``) and ``classes`` (``"Conv2D"``) narrow it. A
    ``SelectionError`` says what to change when no layer qualifies.

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
        render=RenderConfig(grid=tuple(grid_size)),  # type: ignore[arg-type]
    )
    config = override(  # checked like the config file's [select] (a wrong rule name says so)
        config,
        "select",
        rule=select,
        min_size=tuple(limit_size_layer),
        include=_globs(include),
        exclude=_globs(exclude),
        classes=_globs(classes),
    )
    run = capture_model(model, config, patterns=pattern, quiet=True)
    render(run, folder, grid=tuple(grid_size), quiet=True)  # type: ignore[arg-type]
    return folder
