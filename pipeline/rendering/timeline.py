"""Pure helpers for runs with epochs: labels of the time axis, metrics per record, fixed color
scales from the manifest, sheet paging, per-layer statistics. No matplotlib, no I/O.

A training run keys its records by an int (the manifest's ``epoch`` field) whose meaning
run.json's ``time.unit`` gives: ``"epoch"`` (epochs completed, 0 = before training) or
``"step"`` (optimizer steps completed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import layout


@dataclass(frozen=True)
class Timeline:
    """How to name and annotate a run's record keys."""

    unit: str = "epoch"
    # key -> metrics line recorded at that moment (epoch end, or batch record in step unit)
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    # step -> epochs completed at that step (step unit only)
    step_epochs: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_run(cls, info: dict[str, Any], lines: Iterable[dict[str, Any]]) -> Timeline:
        unit = (info.get("time") or {}).get("unit", "epoch")
        by_key: dict[int, dict[str, Any]] = {}
        step_epochs: dict[int, int] = {}
        for line in lines:
            if unit == "epoch":
                if line.get("scope", "epoch") == "epoch" and isinstance(line.get("epoch"), int):
                    by_key[line["epoch"]] = line
            elif isinstance(line.get("step"), int):
                by_key.setdefault(line["step"], line)
                if line.get("scope", "epoch") == "epoch":
                    by_key[line["step"]] = line
                    if isinstance(line.get("epoch"), int):
                        step_epochs[line["step"]] = line["epoch"]
        return cls(unit, by_key, step_epochs)

    def label(self, key: int) -> str:
        """'epoch 3'; in step unit 'step 96' or 'step 96 (epoch 3)' at an epoch end."""
        if self.unit == "epoch":
            return f"epoch {key}"
        if key in self.step_epochs:
            return f"step {key} (epoch {self.step_epochs[key]})"
        return f"step {key}"

    def loss(self, key: int) -> float | None:
        value = self.metrics.get(key, {}).get("loss")
        return float(value) if isinstance(value, (int, float)) else None

    def frame_title(self, pattern_label: str, key: int) -> str:
        """Animation frame title: pattern, time and the training loss at that moment."""
        loss = self.loss(key)
        if key == 0:
            tail = "before training"
        elif loss is None:
            tail = "loss n/a"
        else:
            tail = f"loss {loss:.4f}"
        return f"{pattern_label} · {self.label(key)} · {tail}"

    def curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """Per metric name, the (x, y) curve over epoch-end lines (x in the run's unit)."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for key in sorted(self.metrics):
            line = self.metrics[key]
            if line.get("scope", "epoch") != "epoch":
                continue
            for name, value in line.items():
                if name in ("epoch", "step", "time", "scope") or not isinstance(
                    value, (int, float)
                ):
                    continue
                xs, ys = out.setdefault(name, ([], []))
                xs.append(key)
                ys.append(float(value))
        return out


def pattern_label(info: dict[str, Any], pattern: int) -> str:
    """'pattern 3 (vertical)' when run.json knows the watched patterns' classes."""
    watch = info.get("watch") or {}
    labels = watch.get("labels") or []
    names = watch.get("class_names") or []
    if 0 <= pattern < len(labels):
        label = labels[pattern]
        name = names[label] if isinstance(label, int) and 0 <= label < len(names) else label
        return f"pattern {pattern} ({name})"
    return f"pattern {pattern}"


def layer_limits(entries: Iterable[Any], layers: Sequence[str]) -> dict[str, tuple[float, float]]:
    """One color scale per layer over every record, from manifest entries' min/max alone."""
    mins: dict[str, list[float | None]] = {name: [] for name in layers}
    maxs: dict[str, list[float | None]] = {name: [] for name in layers}
    for e in entries:
        if e.layer in mins:
            mins[e.layer].append(e.min)
            maxs[e.layer].append(e.max)
    return {name: layout.fixed_limits(mins[name], maxs[name]) for name in layers}


def sheet_pages(n_cells: int, max_cells: int = 36) -> tuple[tuple[int, int], list[list[int]]]:
    """Grid (rows, cols) and pages of cell indices for an evolution sheet of ``n_cells``
    records: one near-square page when they fit in ``max_cells``, else pages of max_cells."""
    per = max(1, min(n_cells, max_cells))
    rows, cols = layout.near_square(per)
    return (rows, cols), layout.pages(n_cells, rows, cols)


def pattern_groups(n_patterns: int, bytes_per_pattern: int, budget: int) -> list[range]:
    """Contiguous groups of patterns whose data over all records fits in ``budget`` bytes."""
    size = max(1, budget // max(bytes_per_pattern, 1))
    return [range(s, min(s + size, n_patterns)) for s in range(0, n_patterns, size)]


@dataclass
class LayerStats:
    """Running mean, standard deviation and fraction of exact zeros of one (layer, record)."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    zeros: int = 0

    def add(self, arr: np.ndarray) -> None:
        a = np.asarray(arr, dtype=np.float64)
        finite = a[np.isfinite(a)] if not np.isfinite(a).all() else a.reshape(-1)
        self.count += int(finite.size)
        self.total += float(finite.sum())
        self.squares += float(np.square(finite).sum())
        self.zeros += int(finite.size - np.count_nonzero(finite))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if not self.count:
            return float("nan")
        var = self.squares / self.count - self.mean**2
        return float(np.sqrt(max(var, 0.0)))

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.count if self.count else float("nan")
