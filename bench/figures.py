"""A benchmark figure (baseline, ours, ratio, target) and the table that prints them."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_OPS = {">=": operator.ge, "<=": operator.le}


@dataclass
class Figure:
    """One row of the results table. ``ratio`` is ours relative to the baseline, in the sense
    the target states; ``target`` is ``(">=" | "<=", value)`` or None for "report it"."""

    name: str
    baseline: float | None
    ours: float | None
    unit: str
    ratio: float | None
    target: tuple[str, float] | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        op, value = self.target
        return bool(_OPS[op](self.ratio, value))

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "not available"
        if self.target is None:
            return "reported"
        return "met" if self.met else "NOT met"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = None if self.target is None else f"{self.target[0]} {self.target[1]:g}"
        d["met"] = self.met
        d["status"] = self.status
        return d


def unavailable(name: str, unit: str, target: tuple[str, float] | None, why: str) -> Figure:
    return Figure(name, None, None, unit, None, target, note=why)


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0 or 0.01 <= abs(v) < 100_000:
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:.3g}"


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table: figure, baseline, ours, unit, ratio, target, status."""
    head = ["figure", "baseline", "ours", "unit", "ratio", "target", "status"]
    rows = [
        [
            f.name,
            _num(f.baseline),
            _num(f.ours),
            f.unit,
            "-" if f.ratio is None else f"{f.ratio:,.3g}",
            "report" if f.target is None else f"{f.target[0]} {f.target[1]:g}",
            f.status,
        ]
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(out + ([""] + notes if notes else []))
