"""Names of the feature files (``passage visualize``) in the manifest and on disk (pure).

A feature file's manifest line is an ordinary ``ManifestEntry`` whose ``path`` lies under
``features/`` and whose ``layer`` is ``features.<kind>:<layer name>`` (``feature_key``), so it
never shares a key with a data file. ``first`` is the first channel of the file, ``count`` its
channels, ``shape`` the per-channel shape of its kind (``FEATURE_KINDS``).
"""

from __future__ import annotations

import numpy as np

from ..errors import StoreError
from .naming import epoch_dir

FEATURES = "features"
FEATURE_KINDS = ("image", "activation", "attribution", "top_input", "top_index", "top_value")
# written only when the layer's top patterns were known (an analysis exists)
ATTRIBUTION_KINDS = ("attribution", "top_input", "top_index", "top_value")
KIND_DTYPES = {
    kind: np.dtype(np.int64 if kind == "top_index" else np.float32) for kind in FEATURE_KINDS
}
KEY_PREFIX = "features."


def feature_key(kind: str, layer: str) -> str:
    """The manifest's ``layer`` value of one kind of feature file of ``layer``."""
    if kind not in FEATURE_KINDS:
        raise StoreError(f"feature kind: expected one of {list(FEATURE_KINDS)}, received {kind!r}")
    return f"{KEY_PREFIX}{kind}:{layer}"


def parse_feature_key(key: str) -> tuple[str, str] | None:
    """``(kind, layer)`` of a feature key, or None when ``key`` is not one (a data layer, an
    unknown kind, an empty layer name)."""
    if not key.startswith(KEY_PREFIX):
        return None
    kind, sep, layer = key[len(KEY_PREFIX) :].partition(":")
    if not sep or kind not in FEATURE_KINDS or not layer:
        return None
    return kind, layer


def feature_path(layer_dir: str, epoch: int | None, kind: str, first: int) -> str:
    """``features/<layer dir>/[epoch-E/]<kind>-c<first:06d>.npy`` (POSIX, relative to the run)."""
    if kind not in FEATURE_KINDS:
        raise StoreError(f"feature kind: expected one of {list(FEATURE_KINDS)}, received {kind!r}")
    folder = f"{FEATURES}/{layer_dir}" + ("" if epoch is None else f"/{epoch_dir(epoch)}")
    return f"{folder}/{kind}-c{int(first):06d}.npy"


def is_feature_path(path: str) -> bool:
    return path.startswith(FEATURES + "/")
