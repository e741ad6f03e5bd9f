"""Which layers to capture (pure: no Keras, no I/O).

Rules:
- ``seed`` (the article's): per-pattern output of shape (H, W) with H > min_size[0] and
  W > min_size[1], input layers excluded.
- ``all``: every layer with an output, input layers excluded (``min_size`` is not used).
``min_axis`` (any rule): per-pattern output axis i must be >= ``min_axis[i]``; a single value
applies to every axis; an output with fewer axes than listed values does not qualify.
Then ``include`` globs keep only matching names, ``exclude`` globs drop names, ``classes`` keeps
only those layer classes and ``exclude_classes`` drops classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..config import SelectConfig
from ..errors import SelectionError


@dataclass(frozen=True)
class LayerInfo:
    """What selection needs to know of a layer (its per-pattern output shape)."""

    index: int
    name: str
    class_name: str
    shape: tuple[int | None, ...]
    is_input: bool = False
    params: int = 0  # the layer's weight count (its sublayers' included)


def _seed_rule(layer: LayerInfo, min_size: Sequence[int]) -> bool:
    if len(layer.shape) != 2 or None in layer.shape:
        return False
    h, w = layer.shape
    return h > min_size[0] and w > min_size[1]  # type: ignore[operator]


def min_axis_ok(shape: Sequence[int | None], min_axis: Sequence[int]) -> bool:
    """Does every axis of ``shape`` reach its minimum (see the module docstring)?"""
    if not min_axis:
        return True
    if len(shape) < len(min_axis):  # a scalar output has no axis to reach a single value
        return False
    limits = list(min_axis) * len(shape) if len(min_axis) == 1 else list(min_axis)
    return all(v is None or v >= m for v, m in zip(shape, limits, strict=False))


def matches(layer: LayerInfo, cfg: SelectConfig) -> bool:
    """Does ``layer`` qualify under ``cfg``?"""
    if layer.is_input:
        return False
    if cfg.rule == "seed" and not _seed_rule(layer, cfg.min_size):
        return False
    if not min_axis_ok(layer.shape, cfg.min_axis):
        return False
    if cfg.include and not any(fnmatchcase(layer.name, g) for g in cfg.include):
        return False
    if any(fnmatchcase(layer.name, g) for g in cfg.exclude):
        return False
    if cfg.classes and layer.class_name not in cfg.classes:
        return False
    return layer.class_name not in cfg.exclude_classes


def describe_rule(cfg: SelectConfig) -> str:
    if cfg.rule == "seed":
        text = f"seed rule: output (H, W) with H > {cfg.min_size[0]} and W > {cfg.min_size[1]}"
    else:
        text = "all layers"
    if cfg.min_axis:
        text += f", min_axis={list(cfg.min_axis)}"
    for label, values in (
        ("include", cfg.include),
        ("exclude", cfg.exclude),
        ("classes", cfg.classes),
        ("exclude_classes", cfg.exclude_classes),
    ):
        if values:
            text += f", {label}={list(values)}"
    return text


def select_layers(layers: Sequence[LayerInfo], cfg: SelectConfig) -> list[LayerInfo]:
    """The qualifying layers in model order; raises SelectionError when none does."""
    chosen = [layer for layer in layers if matches(layer, cfg)]
    if not chosen:
        listing = "; ".join(
            f"{layer.name} ({layer.class_name}) {tuple(layer.shape)}" for layer in layers
        )
        raise SelectionError(
            f"no layer qualifies under the {describe_rule(cfg)}. Layers and per-pattern output "
            f"shapes: {listing}. Try --select all, or a smaller --min-size / --min-axis"
        )
    return chosen
