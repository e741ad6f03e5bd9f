"""Relative paths in a config file follow the file's folder (pure): which keys hold paths,
and which part of a model, pattern or dataset spec is a file. Paths given as flags are not
touched here: they follow the current directory.
"""

from __future__ import annotations

import os
from typing import Any

# (section, key) -> what its value names: "path" (a file or folder), "model" (a model spec),
# "patterns" (a pattern spec, one per input separated by commas), "dataset" (a dataset spec) or
# "named" (a list of files, each "NAME=path" or "path").
PATH_KEYS: dict[tuple[str, str], str] = {
    ("capture", "model"): "model",
    ("capture", "patterns"): "patterns",
    ("capture", "out"): "path",
    ("render", "out"): "path",
    ("analyze", "labels"): "path",
    ("analyze", "against"): "path",
    ("compare", "rdms"): "named",
    ("compare", "responses"): "named",
    ("compare", "conditions"): "path",
    ("compare", "labels"): "path",
    ("train", "dataset"): "dataset",
    ("train", "watch"): "patterns",
}
_SCHEMES = ("builtin:", "random:")  # specs that name no file
_FILE_MODULE = (".py", ".npz")  # 'file.py:function', 'file.npz:key': the part before ':' is a file


def resolve_path(path: str, base: str) -> str:
    """``path`` as seen from the current directory when it was written relative to ``base``
    (absolute, empty and ``base`` '' or '.' leave it as it is). Joined lexically
    (``configs/../runs`` is ``runs``), so a config in the current folder, or one in a
    folder below it whose paths climb back up, names the same paths as before."""
    if not path or not base or base == os.curdir or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def resolve_spec(spec: str, kind: str, base: str) -> str:
    """The file paths inside ``spec`` (a ``PATH_KEYS`` kind) resolved against ``base``: a
    plain path; the file of ``file.py:function`` or ``file.npz:key`` (or any ``dir/x:name``);
    each spec of a comma-separated pattern list. ``builtin:``/``random:`` specs and importable
    ``module:function`` names are left as they are."""
    if not base or base == os.curdir:
        return spec  # not even a comma list respaced: the spec, and the run's identity, stay
    if kind == "patterns" and "," in spec:
        return ",".join(resolve_spec(part.strip(), kind, base) for part in spec.split(","))
    if kind == "path":
        return resolve_path(spec, base)
    if kind == "named":
        name, sep, path = spec.rpartition("=")
        return f"{name}{sep}{resolve_path(path, base)}"
    if spec.startswith(_SCHEMES):
        return spec
    module, sep, attr = spec.rpartition(":")
    if not sep:
        return resolve_path(spec, base)
    if module.endswith(_FILE_MODULE) or "/" in module:
        return f"{resolve_path(module, base)}:{attr}"
    return spec  # an importable module:function


def resolve_file_paths(data: dict[str, Any], base: str) -> dict[str, Any]:
    """A parsed config file's ``data`` with the string values of ``PATH_KEYS`` resolved
    against ``base`` (the file's folder); anything else, wrong types included, unchanged."""
    out = dict(data)
    for (section, key), kind in PATH_KEYS.items():
        table = out.get(section)
        if not isinstance(table, dict):
            continue
        value = table.get(key)
        if isinstance(value, str):
            out[section] = {**table, key: resolve_spec(value, kind, base)}
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[section] = {**table, key: [resolve_spec(v, kind, base) for v in value]}
    return out
