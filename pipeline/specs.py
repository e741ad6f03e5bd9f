"""Model and pattern specs: how users name a model and the patterns to pass through it.

Model: ``path.keras`` / ``path.h5``, ``module:function`` (module importable or a ``.py``
path), or ``builtin:NAME``. Patterns: ``file.npy`` (memory-mapped, no pickles),
``file.npz[:key]`` (one key per input for several inputs), a folder of PNG/JPEG images,
``module:function`` (an iterable of batches, e.g. a ``tf.data`` pipeline), ``random:N[:SEED]``
(uniform [0, 1), deterministic), or one spec per input separated by commas.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, PassageError, PatternError, SpecError

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
    ``reader(first, size)`` replaces them for lazy sources (image folders, one source per
    input); neither: seeded random patterns. ``kind`` and ``names`` say where each pattern came
    from: ``names[i]`` labels pattern i (image file names); ``None`` means pattern i is row i of
    ``origin``.
    """

    spec: str
    count: int
    shapes: list[tuple[int, ...]]
    arrays: list[Any] = field(default_factory=list)
    seed: int | None = None
    origin: str = ""
    kind: str = "rows"
    names: list[str] | None = None
    reader: Callable[[int, int], list[np.ndarray]] | None = None

    def batches(self, batch_size: int, start: int = 0) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield ``(first, [array per input])`` from ``start`` in order."""
        for first in range(start, self.count, batch_size):
            yield first, self.batch(first, min(batch_size, self.count - first))

    def batch(self, first: int, size: int) -> list[np.ndarray]:
        if self.reader is not None:
            return self.reader(first, size)
        if self.arrays:
            return [np.asarray(a[first : first + size]) for a in self.arrays]
        return [self._random(first, size)]

    def label(self, index: int) -> str:
        """Where pattern ``index`` came from: a file name, or ``origin[row]``."""
        if self.names is not None:
            return self.names[index]
        return f"{self.origin}[{index}]"

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the sources (``sources`` key)."""
        return {"kind": self.kind, "origin": self.origin, "names": self.names}

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
    return PatternSource(spec, count, [tuple(shape)], seed=seed, origin="random", kind="random")  # type: ignore[arg-type]


def _load_npy(path: Path, spec: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise PatternError(
            f"pattern file {path}: {exc}; object/pickled arrays are refused, save a numeric array"
        ) from exc
    except OSError as exc:
        raise PatternError(f"pattern file {path} cannot be read: {exc}") from exc


def _npz_keys(
    keys: list[str], key: str | None, names: Sequence[str], key_map: Mapping[str, str], spec: str
) -> list[str]:
    """Which archive key feeds each model input."""
    if key is not None:
        if len(names) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: one key feeds one input, but the model has inputs "
                f"{list(names)}; drop ':{key}' and name a key per input in [capture] inputs, "
                "or store one key per input name"
            )
        return [key]
    unknown = sorted(set(key_map) - set(names))
    if unknown:
        raise SpecError(
            f"[capture] inputs names {unknown}, which are not model inputs; expected names "
            f"from {list(names)}"
        )
    if len(names) == 1 and not key_map:
        if names[0] in keys:
            return [names[0]]
        if len(keys) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: the archive holds {keys}; name one as '{spec}:KEY'"
            )
        return keys
    chosen = [key_map.get(n, n) for n in names]
    missing = [f"{n} -> {k}" for n, k in zip(names, chosen, strict=True) if k not in keys]
    if missing:
        raise SpecError(
            f"pattern spec {spec!r}: expected one key per model input ({', '.join(missing)} not "
            f"found); the archive holds {keys}. Store a key named after each input, or map input "
            'names to keys in [capture] inputs = {NAME = "KEY"}'
        )
    return chosen


def read_npz(
    path: Path, pick: Callable[[list[str]], list[str]], what: str = "pattern file"
) -> list[np.ndarray]:
    """The arrays of an ``.npz`` (pickles refused) under the keys ``pick(available keys)``
    returns; ``pick`` raises SpecError for keys that are not there."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return [np.asarray(npz[k]) for k in pick(list(npz.keys()))]
    except PassageError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PatternError(f"{what} {path} cannot be read: {exc}") from exc


def _load_npz(
    path: Path,
    key: str | None,
    spec: str,
    names: Sequence[str] = ("input",),
    key_map: Mapping[str, str] | None = None,
) -> list[np.ndarray]:
    def pick(keys: list[str]) -> list[str]:
        if key is not None and key not in keys:
            raise SpecError(f"pattern spec {spec!r}: no key {key!r}; the archive holds {keys}")
        return _npz_keys(keys, key, names, key_map or {}, spec)

    return read_npz(path, pick)


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


def _check_arrays(spec: str, arrays: Sequence[np.ndarray]) -> None:
    for arr in arrays:
        if arr.dtype.kind not in "biuf":
            raise PatternError(
                f"patterns {spec!r} have dtype {arr.dtype}; expected numbers (int, bool, float)"
            )
        if arr.ndim < 1:
            raise PatternError(f"patterns {spec!r} are a scalar; expected (N, *input_shape)")
    counts = {int(a.shape[0]) for a in arrays}
    if len(counts) > 1:
        raise PatternError(
            f"patterns {spec!r}: the inputs hold different pattern counts {sorted(counts)}; "
            "expected the same count for every input"
        )
    for arr in arrays:
        if arr.dtype != np.float32:
            log.info(
                "patterns %s have dtype %s; they are cast to the input dtype batch by batch",
                spec,
                arr.dtype,
            )


def _is_generator_spec(spec: str) -> bool:
    module, sep, attr = spec.rpartition(":")
    return bool(sep and module and attr.isidentifier() and not Path(spec).exists())


def _load_one(
    spec: str,
    shapes: Sequence[tuple[int | None, ...]],
    names: Sequence[str],
    key_map: Mapping[str, str],
    limit: int = 0,
) -> PatternSource:
    """One spec feeding every input in ``names``; at most ``limit`` patterns (0: all)."""
    return limited(_source(spec, shapes, names, key_map, limit), limit)


def limited(source: PatternSource, limit: int) -> PatternSource:
    """The first ``limit`` patterns of ``source`` (all of them when ``limit`` is 0)."""
    if not limit or source.count <= limit:
        return source
    names = source.names[:limit] if source.names is not None else None
    return dataclasses.replace(source, count=limit, names=names)


def _source(
    spec: str,
    shapes: Sequence[tuple[int | None, ...]],
    names: Sequence[str],
    key_map: Mapping[str, str],
    limit: int,
) -> PatternSource:
    from . import sources

    if spec.startswith("random:"):
        return _parse_random(spec, shapes)
    path_text, _, key = spec.partition(":") if ".npz:" in spec else (spec, "", "")
    path = Path(path_text)
    if path.is_dir():
        if len(shapes) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: an image folder feeds one input; the model has inputs "
                f"{list(names)}. Give one spec per input separated by commas "
                "('a_images/,b.npy'), or an .npz with one key per input"
            )
        return sources.image_folder(path, shapes[0], spec)
    if not path.exists():
        if path.suffix not in (".npy", ".npz") and _is_generator_spec(spec):
            return sources.from_generator(spec, shapes, names, limit)
        raise PatternError(f"pattern file not found: {path}")
    if path.suffix == ".npy":
        if len(shapes) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: an .npy file feeds one input; the model has inputs "
                f"{list(names)}. Use an .npz with one key per input, or one spec per input "
                "separated by commas"
            )
        arrays = [_load_npy(path, spec)]
    elif path.suffix == ".npz":
        arrays = _load_npz(path, key or None, spec, names, key_map)
    else:
        raise SpecError(
            f"pattern spec {spec!r}: expected file.npy, file.npz[:key], an image folder, "
            "module:function or random:N[:SEED]"
        )
    _check_arrays(spec, arrays)
    return PatternSource(
        spec,
        int(arrays[0].shape[0]),
        [tuple(a.shape[1:]) for a in arrays],
        arrays,
        origin=str(path),
    )


def _combine(spec: str, parts: Sequence[PatternSource]) -> PatternSource:
    """One source per input (a comma-separated spec) as one source."""
    counts = [p.count for p in parts]
    if len(set(counts)) != 1:
        raise PatternError(
            f"patterns {spec!r}: the per-input sources hold {counts} patterns; expected the "
            "same count for every input"
        )

    def read(first: int, size: int) -> list[np.ndarray]:
        return [x for p in parts for x in p.batch(first, size)]

    names = None
    if any(p.names is not None for p in parts):
        names = [",".join(p.label(i) for p in parts) for i in range(counts[0])]
    return PatternSource(
        spec,
        counts[0],
        [s for p in parts for s in p.shapes],
        origin=",".join(p.origin for p in parts),
        kind="+".join(p.kind for p in parts),
        names=names,
        reader=read,
    )


def load_patterns(
    spec: str,
    input_shapes: Sequence[tuple[int | None, ...]],
    input_names: Sequence[str] | None = None,
    key_map: Mapping[str, str] | None = None,
    limit: int = 0,
) -> PatternSource:
    """Resolve a pattern spec for a model whose inputs have ``input_shapes`` (per pattern);
    ``limit`` > 0 keeps only the first ``limit`` patterns (a generator is read no further).

    For several inputs: an ``.npz`` with one key per input (named after the input, or mapped
    by ``key_map`` {input name: key}), a ``module:function`` yielding one array per input, or
    one spec per input separated by commas (``images/,meta.npy``).
    """
    names = (
        list(input_names)
        if input_names is not None
        else [f"input_{i}" for i in range(len(input_shapes))]
    )
    key_map = dict(key_map or {})
    parts = [p.strip() for p in spec.split(",")] if "," in spec else [spec]
    if len(parts) > 1:
        if len(parts) != len(input_shapes):
            raise PatternError(
                f"pattern spec {spec!r} names {len(parts)} sources; the model has "
                f"{len(input_shapes)} inputs {names}: expected one source per input"
            )
        source = _combine(
            spec,
            [
                _load_one(p, [s], [n], {n: key_map[n]} if n in key_map else {}, limit)
                for p, s, n in zip(parts, input_shapes, names, strict=True)
            ],
        )
    else:
        source = _load_one(spec, input_shapes, names, key_map, limit)
    if len(source.shapes) != len(input_shapes):
        raise PatternError(
            f"patterns {spec!r} feed {len(source.shapes)} input(s); the model has "
            f"{len(input_shapes)} {names}"
        )
    check_shapes(spec, source.shapes, input_shapes)
    if source.count == 0:
        raise PatternError(f"patterns {spec!r} hold zero patterns; expected at least one")
    return source
