"""Which layers to capture (pure: no Keras, no I/O).

Rules (``RULES`` in pipeline/config.py; ``maps`` is the default):
- ``maps``: the article's rule generalized to feature maps: a per-pattern output of shape
  (H, W) or (H, W, C) with H > min_size[0] and W > min_size[1] (H and W known).
- ``seed`` (the article's, strict): per-pattern output of shape (H, W) with H > min_size[0]
  and W > min_size[1]. On the article's model both rules pick the same three layers.
- ``all``: every layer with an output (``min_size`` is not used).
Input layers never qualify.
``min_axis`` (any rule): per-pattern output axis i must be >= ``min_axis[i]``; a single value
applies to every axis; an output with fewer axes than listed values does not qualify.
Then ``include`` globs keep only matching names, ``exclude`` globs drop names, ``classes`` keeps
only those layer classes and ``exclude_classes`` drops classes.

When no layer qualifies, ``select_layers`` raises one short line (``no_layer_message``, at most
``MESSAGE_LIMIT`` characters whatever the model's size): how many layers of which ranks, the
rule, and only the changes that would select something.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from ..config import RULES, SelectConfig
from ..errors import SelectionError

MESSAGE_LIMIT = 300  # characters of the "no layer qualifies" line


@dataclass(frozen=True)
class LayerInfo:
    """What selection needs to know of a layer (its per-pattern output shape)."""

    index: int
    name: str
    class_name: str
    shape: tuple[int | None, ...]
    is_input: bool = False
    params: int = 0  # the layer's weight count (its sublayers' included)


# Ranks of the outputs each size rule accepts (its first two axes compared with min_size).
_SIZE_RULE_RANKS = {"seed": (2,), "maps": (2, 3)}


def rule_matches(layer: LayerInfo, rule: str, min_size: Sequence[int]) -> bool:
    """Does ``layer`` qualify under ``rule`` alone (no min_axis, globs or classes)?"""
    if layer.is_input:
        return False
    ranks = _SIZE_RULE_RANKS.get(rule)
    if ranks is None:  # "all"
        return True
    if len(layer.shape) not in ranks:
        return False
    h, w = layer.shape[0], layer.shape[1]
    return h is not None and w is not None and h > min_size[0] and w > min_size[1]


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
    if not rule_matches(layer, cfg.rule, cfg.min_size):
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
    """The rule and every filter of ``cfg`` in words."""
    h, w = cfg.min_size[:2] if len(cfg.min_size) >= 2 else ("?", "?")
    if cfg.rule == "seed":
        text = f"seed rule: output (H, W) with H > {h} and W > {w}"
    elif cfg.rule == "maps":
        text = f"maps rule: output (H, W) or (H, W, C) with H > {h} and W > {w}"
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


def rank_summary(layers: Sequence[LayerInfo]) -> str:
    """'155 layers besides the inputs: 2 of rank 1, 153 of rank 3' (ranks in order)."""
    ranks = Counter(len(layer.shape) for layer in layers if not layer.is_input)
    total = sum(ranks.values())
    parts = ", ".join(f"{n} of rank {r}" for r, n in sorted(ranks.items()))
    noun = "layer" if total == 1 else "layers"
    return f"{total} {noun} besides the inputs: {parts}" if total else "no layer besides the inputs"


def _any(layers: Sequence[LayerInfo], cfg: SelectConfig) -> list[LayerInfo]:
    return [layer for layer in layers if matches(layer, cfg)]


def suggestions(layers: Sequence[LayerInfo], cfg: SelectConfig) -> list[str]:
    """Changes to ``cfg`` that would select at least one layer (only those), then the
    listing command; each is a short phrase."""
    tries: list[str] = []
    if cfg.rule in _SIZE_RULE_RANKS:
        found = _any(layers, replace(cfg, min_size=(0, 0)))
        if found:
            sizes = [(int(layer.shape[0] or 0), int(layer.shape[1] or 0)) for layer in found]
            h, w = max(sizes, key=lambda hw: (hw[0] * hw[1], hw))  # the largest map
            tries.append(f"--min-size {h - 1}x{w - 1}")
    for rule in RULES:
        if rule != cfg.rule and _any(layers, replace(cfg, rule=rule)):
            tries.append(f"--select {rule}" + (" --include GLOB" if rule == "all" else ""))
    if cfg.min_axis and _any(layers, replace(cfg, min_axis=())):
        tries.append("a smaller --min-axis")
    unfiltered = replace(cfg, include=(), exclude=(), classes=(), exclude_classes=())
    if unfiltered != cfg and _any(layers, unfiltered):
        tries.append("other --include/--exclude/--class filters")
    tries.append("`passage layers MODEL` to see every name and shape")
    return tries


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def no_layer_message(layers: Sequence[LayerInfo], cfg: SelectConfig) -> str:
    """The one line said when no layer qualifies (at most ``MESSAGE_LIMIT`` characters)."""
    if not any(not layer.is_input for layer in layers):
        return "the model has no layer besides its inputs: there is nothing to capture"
    tail = f"; {rank_summary(layers)}. Try " + ", ".join(suggestions(layers, cfg))
    head = "no layer qualifies under the "
    room = MESSAGE_LIMIT - len(head) - len(tail)
    if room < 20:  # very many filters: the rule stays readable, the try list gives way
        tail = _shorten(tail, MESSAGE_LIMIT - len(head) - 60)
        room = MESSAGE_LIMIT - len(head) - len(tail)
    return head + _shorten(describe_rule(cfg), room) + tail


def select_layers(layers: Sequence[LayerInfo], cfg: SelectConfig) -> list[LayerInfo]:
    """The qualifying layers in model order; raises SelectionError when none does."""
    chosen = _any(layers, cfg)
    if not chosen:
        raise SelectionError(no_layer_message(layers, cfg))
    return chosen
