"""Safe, unique file names for layers and epochs (pure).

A layer name may hold '/', spaces, dots, '..' or non-ASCII characters; none of that reaches the
file system. Each layer's folder is prefixed with its model-order index, so two names that
slug to the same text still get different folders.

Stored model inputs (``--keep-inputs``) live beside the layers, never among them: their data
files lie under ``data/inputs/`` (no epoch folder is named ``inputs``) and their manifest
entries name them ``input:<input name>`` (``input_key``), which the capture refuses to share
with a selected layer.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(name: str, max_len: int = 60) -> str:
    """ASCII-only, path-free rendering of ``name`` (never empty, never starts with a dot)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", ascii_name).strip("_-")[:max_len]
    return text or "layer"


_SAFE_DIR = re.compile(r"[A-Za-z0-9_-]+")


def is_safe_dir(text: str) -> bool:
    """Is ``text`` one plain folder name (no separator, no dot, not empty)?"""
    return bool(_SAFE_DIR.fullmatch(text))


INPUT_PREFIX = "input:"
INPUTS_DIR = "inputs"


def input_key(name: str) -> str:
    """The manifest's ``layer`` value for the stored model input ``name``: ``input:<name>``."""
    return INPUT_PREFIX + name


def layer_dir(index: int, name: str) -> str:
    """Folder name of a layer: ``<index>-<slug>``, unique by its index."""
    return f"{index:03d}-{slug(name)}"


def epoch_dir(epoch: int | None) -> str:
    """Folder name of an epoch: ``batch`` in batch mode, ``epoch-00007`` in training mode."""
    return "batch" if epoch is None else f"epoch-{int(epoch):05d}"


def data_path(layer_folder: str, epoch: int | None, first: int, ext: str) -> str:
    """Relative path (POSIX) of one data file inside the run."""
    return f"data/{epoch_dir(epoch)}/{layer_folder}/{int(first):010d}.{ext}"


def input_path(input_folder: str, epoch: int | None, first: int, ext: str) -> str:
    """Relative path (POSIX) of one data file of a stored model input:
    ``data/inputs/<epoch folder>/<input folder>/<first>.<ext>``."""
    return f"data/{INPUTS_DIR}/{epoch_dir(epoch)}/{input_folder}/{int(first):010d}.{ext}"
