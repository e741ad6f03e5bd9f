"""The store: the on-disk contract between capture and render (format: docs/store-format.md)."""

from .manifest import MANIFEST, METRICS, RUN_JSON, SCHEMA_VERSION, ManifestEntry, read_manifest
from .queued import EntryList, QueuedWriter
from .reader import CkaMatrix, InputRecord, LayerRecord, Run, open_run
from .writer import RunWriter

__all__ = [
    "MANIFEST",
    "METRICS",
    "RUN_JSON",
    "SCHEMA_VERSION",
    "CkaMatrix",
    "InputRecord",
    "LayerRecord",
    "ManifestEntry",
    "EntryList",
    "QueuedWriter",
    "Run",
    "RunWriter",
    "open_run",
    "read_manifest",
]
