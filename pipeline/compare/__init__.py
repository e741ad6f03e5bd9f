"""The compare stage: a run's layers against neural data, by representational similarity
(RSA) and by encoding models, per layer and per epoch, from the store alone (no TensorFlow).
docs/compare.md explains the inputs, the methods and every key of the results."""

from .runner import CompareReport, compare

__all__ = ["CompareReport", "compare"]
