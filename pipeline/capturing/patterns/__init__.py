"""Pattern sources: arrays, image folders, generators, seeded random patterns."""

from .source import PatternSource, check_shapes, limited
from .spec import load_patterns

__all__ = ["PatternSource", "check_shapes", "limited", "load_patterns"]
