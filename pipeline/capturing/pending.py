"""What a capture still has to write: the batches of one record whose files the run lacks.

Batch capture asks for its one record (key ``None``), the training callback for each record
it makes; both resume this way, skipping every file the manifest already lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..store import RunWriter


@dataclass(frozen=True)
class Pending:
    """Patterns ``first`` to ``first + size - 1``, still to be written for layers ``missing``."""

    first: int
    size: int
    missing: frozenset[str]


def pending_batches(
    writer: RunWriter, names: Sequence[str], key: int | None, count: int, batch_size: int
) -> list[Pending]:
    """The batches of ``count`` patterns, ``batch_size`` at a time, that lack a file under
    ``key`` for one of the layers ``names`` (in pattern order)."""
    todo = []
    for first in range(0, count, batch_size):
        missing = frozenset(n for n in names if not writer.has(n, key, first))
        if missing:
            todo.append(Pending(first, min(batch_size, count - first), missing))
    return todo
