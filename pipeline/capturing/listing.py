"""``passage layers``: every layer of a model in an aligned text table (pure: no Keras, no I/O).

One row per layer in model order: index, path name, class, per-pattern output shape,
parameters, then one column per selection rule (the rule alone, with the configuration's
``min_size``) and ``selected`` (the whole configuration: rule, ``min_axis``, globs, classes).
A last line says how many layers are selected and by what; when none is, what would select some.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import RULES, SelectConfig
from .selection import LayerInfo, describe_rule, matches, rule_matches, suggestions

YES, NO = "x", "-"


def format_shape(shape: Sequence[int | None]) -> str:
    """``(48, 48, 32)``, ``(10,)``, ``()``; unknown sizes as ``None``."""
    inner = ", ".join("None" if v is None else str(v) for v in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def layer_rows(layers: Sequence[LayerInfo], cfg: SelectConfig) -> list[list[str]]:
    """The table's cells, header row first."""
    header = ["#", "layer", "class", "output", "params", *RULES, "selected"]
    rows = [header]
    for layer in layers:
        rules = [YES if rule_matches(layer, r, cfg.min_size) else NO for r in RULES]
        rows.append(
            [
                str(layer.index),
                layer.name,
                layer.class_name,
                format_shape(layer.shape),
                f"{layer.params:,}",
                *rules,
                YES if matches(layer, cfg) else NO,
            ]
        )
    return rows


def summary_line(layers: Sequence[LayerInfo], cfg: SelectConfig) -> str:
    """'30 of 156 layers selected by the maps rule: ...' (or what to try when none is)."""
    chosen = sum(matches(layer, cfg) for layer in layers)
    line = f"{chosen} of {len(layers)} layers selected by the {describe_rule(cfg)}"
    if not chosen:
        tries = [t for t in suggestions(layers, cfg) if not t.startswith("`passage layers")]
        line += ("; try " + ", ".join(tries)) if tries else "; no setting selects any"
    return line


def layer_table(layers: Sequence[LayerInfo], cfg: SelectConfig) -> str:
    """Every layer in aligned columns (text left, numbers and marks right), then the summary."""
    rows = layer_rows(layers, cfg)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = {1, 2, 3}  # name, class, shape
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(summary_line(layers, cfg))
    return "\n".join(lines)
