"""docs/architecture.md lists every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pipeline"
DOC = ROOT / "docs" / "architecture.md"
SECTION = re.compile(r"^## .*\(`pipeline/(?:(\w+)/)?`\)", re.M)
ROW = re.compile(r"^\| `([\w/]+\.py)` \|", re.M)


def documented() -> set[str]:
    text = DOC.read_text()
    found: set[str] = set()
    heads = list(SECTION.finditer(text))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        prefix = f"{head.group(1)}/" if head.group(1) else ""
        found |= {prefix + m.group(1) for m in ROW.finditer(text, head.end(), end)}
    return found


def test_every_module_is_documented_and_every_row_exists() -> None:
    actual = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")}
    rows = documented()
    assert rows, "no module table found in docs/architecture.md"
    assert sorted(actual - rows) == [], "modules missing from docs/architecture.md"
    assert sorted(rows - actual) == [], "docs/architecture.md names modules that do not exist"
