"""Small checks of parsed JSON values, shared by the manifest and run.json readers."""

from __future__ import annotations

from typing import Any

from ..errors import StoreError


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a received value, cut to a short piece of one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value: Any, low: int = 0) -> bool:
    """A JSON integer (not a bool) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def refuse(what: str, expected: str, value: Any) -> StoreError:
    """The error for a field that holds the wrong thing: what was expected, what was received."""
    return StoreError(f"{what}: expected {expected}, received {short(value)}")
