"""Model and pattern specs: how users name a model and the patterns to pass through it.

Model: ``path.keras`` / ``path.h5``, ``module:function`` (module importable or a ``.py``
path), or ``builtin:NAME``. Patterns: ``file.npy`` (memory-mapped, no pickles),
``file.npz:key``, ``random:N[:SEED]`` (uniform [0, 1), deterministic).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, PatternError, SpecError

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


# -- models ------------------------------------------------------------------------------------
def load_callable(spec: str, what: str) -> Any:
    """Resolve ``module:function`` (module importable or a path to a .py file)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{what} spec {spec!r}: expected 'module:function'")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise SpecError(f"{what} spec {spec!r}: file {path} not found")
        mod_id = f"passage_user_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_id, path)
        if loader_spec is None or loader_spec.loader is None:
            raise SpecError(f"{what} spec {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_id] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise SpecError(f"{what} spec {spec!r}: importing {path} failed: {exc}") from exc
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecError(f"{what} spec {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(f"{what} spec {spec!r}: {module_name!r} has no {attr!r}") from None


def load_model(spec: str, unsafe: bool = False) -> Any:
    """Build or load the Keras model a spec names."""
    from ._tf import keras_and_tf
    from .builtins import builtin_model

    keras, _ = keras_and_tf()

    if spec.startswith("builtin:"):
        return builtin_model(spec.split(":", 1)[1])
    if spec.lower().endswith(MODEL_SUFFIXES):
        path = Path(spec)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        try:
            return keras.saving.load_model(path, compile=True, safe_mode=not unsafe)
        except Exception as exc:
            text = str(exc)
            if "safe_mode" in text or "unsafe" in text.lower() or "lambda" in text.lower():
                raise ModelLoadError(
                    f"model {path} needs unsafe deserialization (it holds a Lambda layer or "
                    "custom code); pass --unsafe only if you trust this file"
                ) from exc
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise ModelLoadError(f"cannot load model {path}: {first}") from exc
    if ":" in spec:
        factory = load_callable(spec, "model")
        try:
            model = factory()
        except Exception as exc:
            raise SpecError(f"model factory {spec!r} failed: {exc}") from exc
        if not isinstance(model, keras.Model):
            raise SpecError(
                f"model factory {spec!r}: expected a keras.Model, received {type(model).__name__}"
            )
        return model
    raise SpecError(
        f"model spec {spec!r}: expected a .keras/.h5 file, 'module:function' or 'builtin:NAME'"
    )


# -- patterns ----------------------------------------------------------------------------------
@dataclass
class PatternSource:
    """Patterns to pass through a model, produced batch by batch.

    ``arrays`` holds one array-like per model input (memory-mapped files stay on disk);
    ``generate`` replaces them for synthetic sources. ``names`` labels each pattern's origin.
    """

    spec: str
    count: int
    shapes: list[tuple[int, ...]]
    arrays: list[Any] = field(default_factory=list)
    seed: int | None = None
    origin: str = ""

    def batches(self, batch_size: int, start: int = 0) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield ``(first, [array per input])`` from ``start`` in order."""
        for first in range(start, self.count, batch_size):
            yield first, self.batch(first, min(batch_size, self.count - first))

    def batch(self, first: int, size: int) -> list[np.ndarray]:
        if self.arrays:
            return [np.asarray(a[first : first + size]) for a in self.arrays]
        return [self._random(first, size)]

    def _random(self, first: int, size: int) -> np.ndarray:
        # One float64 per value from PCG64, so skipping ahead is exact: pattern i is the same
        # whatever the batch size or the resume point.
        shape = self.shapes[0]
        per = int(np.prod(shape, dtype=np.int64))
        bitgen = np.random.PCG64(self.seed)
        bitgen.advance(first * per)
        out = np.random.Generator(bitgen).random((size, *shape), dtype=np.float64)
        return out.astype(np.float32)


def _parse_random(spec: str, shapes: Sequence[tuple[int | None, ...]]) -> PatternSource:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise SpecError(f"pattern spec {spec!r}: expected 'random:N' or 'random:N:SEED'")
    try:
        count = int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise SpecError(f"pattern spec {spec!r}: N and SEED must be integers") from None
    if count < 0 or seed < 0:
        raise SpecError(f"pattern spec {spec!r}: expected N >= 0 and SEED >= 0")
    if len(shapes) != 1:
        raise SpecError(
            f"pattern spec {spec!r}: random patterns feed one input; the model has {len(shapes)}"
        )
    shape = shapes[0]
    if None in shape:
        raise SpecError(
            f"pattern spec {spec!r}: the model input shape {shape} has an unknown size; "
            "random patterns need a fixed shape"
        )
    return PatternSource(spec, count, [tuple(shape)], seed=seed, origin="random")  # type: ignore[arg-type]


def _load_npy(path: Path, spec: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise PatternError(
            f"pattern file {path}: {exc}; object/pickled arrays are refused, save a numeric array"
        ) from exc
    except OSError as exc:
        raise PatternError(f"pattern file {path} cannot be read: {exc}") from exc


def _load_npz(path: Path, key: str | None, spec: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if key is None:
                if len(keys) != 1:
                    raise SpecError(
                        f"pattern spec {spec!r}: the archive holds {keys}; name one as '{path}:KEY'"
                    )
                key = keys[0]
            if key not in keys:
                raise SpecError(f"pattern spec {spec!r}: no key {key!r}; the archive holds {keys}")
            return npz[key]
    except (ValueError, zipfile.BadZipFile) as exc:
        raise PatternError(f"pattern file {path} cannot be read: {exc}") from exc


def check_shapes(
    spec: str, got: Sequence[tuple[int, ...]], want: Sequence[tuple[int | None, ...]]
) -> None:
    for g, w in zip(got, want, strict=True):
        ok = len(g) == len(w) and all(x is None or x == y for x, y in zip(w, g, strict=True))
        if not ok:
            raise PatternError(
                f"patterns {spec!r} have shape {tuple(g)} per pattern but the model input expects "
                f"{tuple(w)}; reshape the patterns or pick another model"
            )


def load_patterns(spec: str, input_shapes: Sequence[tuple[int | None, ...]]) -> PatternSource:
    """Resolve a pattern spec for a model whose inputs have ``input_shapes`` (per pattern)."""
    if spec.startswith("random:"):
        source = _parse_random(spec, input_shapes)
    else:
        path_text, _, key = spec.partition(":") if ".npz:" in spec else (spec, "", "")
        path = Path(path_text)
        if not path.exists():
            raise PatternError(f"pattern file not found: {path}")
        if path.is_dir():
            raise SpecError(
                f"pattern spec {spec!r} is a folder; expected a file.npy, file.npz[:key] or "
                "random:N[:SEED] (folders of images are not a pattern source yet)"
            )
        if path.suffix == ".npy":
            arr = _load_npy(path, spec)
        elif path.suffix == ".npz":
            arr = _load_npz(path, key or None, spec)
        else:
            raise SpecError(
                f"pattern spec {spec!r}: expected file.npy, file.npz[:key] or random:N[:SEED]"
            )
        if arr.dtype.kind not in "biuf":
            raise PatternError(
                f"patterns {spec!r} have dtype {arr.dtype}; expected numbers (int, bool, float)"
            )
        if arr.ndim < 1:
            raise PatternError(f"patterns {spec!r} are a scalar; expected (N, *input_shape)")
        source = PatternSource(
            spec, int(arr.shape[0]), [tuple(arr.shape[1:])], arrays=[arr], origin=str(path)
        )
        if arr.dtype != np.float32:
            log.info(
                "patterns %s have dtype %s; they are cast to float32 batch by batch",
                spec,
                arr.dtype,
            )
    if len(source.shapes) != len(input_shapes):
        raise PatternError(
            f"patterns {spec!r} feed {len(source.shapes)} input(s); the model has {len(input_shapes)}"
        )
    check_shapes(spec, source.shapes, input_shapes)
    if source.count == 0:
        raise PatternError(f"patterns {spec!r} hold zero patterns; expected at least one")
    return source
