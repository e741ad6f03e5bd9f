"""What an analysis did (``AnalysisReport``): files computed or up to date, pictures, problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AnalysisReport:
    """What ``analyze`` did: files written or up to date, pictures, and problems (damaged
    data files that left a layer out)."""

    out: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    prefix: dict[int | None, int] = field(default_factory=dict)
    pieces: int = 0  # pieces of layer data reduced (not taken from a kept partial result)
