"""One exception hierarchy for the whole project.

Every class also inherits a built-in exception, so ``except ValueError`` keeps working for
callers who do not know ours. Messages say what was expected, what was received, and what to
do; the CLI prints them as one line and exits with status 2.
"""

from __future__ import annotations


class PassageError(Exception):
    """Base class of every error Passage raises on purpose."""

    exit_code = 2


class ConfigError(PassageError, ValueError):
    """A configuration file or flag is malformed, has an unknown key or a wrong type."""


class SpecError(PassageError, ValueError):
    """A model, pattern or dataset spec cannot be understood."""


class ModelRunError(SpecError):
    """Keras cannot run the model: a layer's call raises while the probe is traced or run."""


class ModelLoadError(PassageError, OSError):
    """A model file is missing, unreadable, or needs unsafe deserialization."""


class PatternError(PassageError, ValueError):
    """Patterns are missing, empty, or do not fit the model's input."""


class SelectionError(PassageError, ValueError):
    """No layer qualifies under the selection rule."""


class StoreError(PassageError, OSError):
    """A run directory is missing, damaged, locked, or holds a different run."""


class NotInRunError(StoreError, LookupError):
    """A layer, epoch or pattern asked of a run is not in it."""


class RunLockedError(StoreError):
    """Another live process is writing into the run."""


class DamagedDataError(StoreError):
    """A data file listed in the manifest is missing or does not match its manifest line.

    ``reason`` is a short label for pictures and summaries ("missing file", "checksum
    mismatch", ...); ``path`` is the file's path relative to the run.
    """

    def __init__(self, message: str, reason: str, path: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:  # picklable across the render process pool
        return (type(self), (str(self), self.reason, self.path))


class DiskFullError(StoreError):
    """The disk filled up (or is read-only) while writing the run."""


class ShapeError(PassageError, ValueError):
    """Arrays handed to a computation (CKA, its accumulators) do not have the shapes it needs."""


class RenderError(PassageError, RuntimeError):
    """Rendering could not draw what was asked."""


class DistributedError(PassageError, RuntimeError):
    """The Dask cluster could not be reached, was lost, or cannot run what was asked."""


class NeuralDataError(PassageError, ValueError):
    """Neural data handed to compare (reference RDMs, responses, conditions) cannot be read, or
    does not fit the run (a count of conditions that differs from the run's patterns)."""
