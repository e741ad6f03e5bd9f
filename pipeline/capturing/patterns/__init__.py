"""Pattern sources: arrays, image folders, generators, seeded random patterns."""

from .arrays import array_source
from .source import PatternSource, check_shapes, limited
from .spec import load_patterns

__all__ = ["PatternSource", "array_source", "check_shapes", "limited", "load_patterns"]
