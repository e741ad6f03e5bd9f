"""Pattern specs: how users name the patterns to pass through a model.

``file.npy`` (memory-mapped, no pickles), ``file.npz[:key]`` (one key per input for several
inputs), a folder of PNG/JPEG images, ``module:function`` (an iterable of batches, e.g. a
``tf.data`` pipeline), ``random:N[:SEED]`` (uniform [0, 1), deterministic), or one spec per
input separated by commas. ``preprocess`` and ``resize`` apply to image folders only
(``images.py``, ``preprocess.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...config import RESIZES
from ...errors import ConfigError, PatternError, SpecError
from .arrays import load_npy, load_npz, pattern_keys
from .generators import from_generator
from .images import image_folder
from .preprocess import Preprocess, resolve_preprocess
from .source import PatternSource, check_arrays, check_shapes, combine, limited


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


def is_generator_spec(spec: str) -> bool:
    """``module:function`` (not an existing file): patterns made by running code."""
    module, sep, attr = spec.rpartition(":")
    return bool(sep and module and attr.isidentifier() and not Path(spec).exists())


def _load_one(
    spec: str,
    shapes: Sequence[tuple[int | None, ...]],
    names: Sequence[str],
    key_map: Mapping[str, str],
    limit: int = 0,
    images: tuple[str, Preprocess | None] = (RESIZES[0], None),
) -> PatternSource:
    """One spec feeding every input in ``names``; at most ``limit`` patterns (0: all);
    ``images``: (resize, preprocess) for an image folder."""
    return limited(_source(spec, shapes, names, key_map, limit, images), limit)


def _source(
    spec: str,
    shapes: Sequence[tuple[int | None, ...]],
    names: Sequence[str],
    key_map: Mapping[str, str],
    limit: int,
    images: tuple[str, Preprocess | None],
) -> PatternSource:
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
        return image_folder(path, shapes[0], spec, *images)
    if not path.exists():
        if path.suffix not in (".npy", ".npz") and is_generator_spec(spec):
            return from_generator(spec, shapes, names, limit)
        raise PatternError(f"pattern file not found: {path}")
    if path.suffix == ".npy":
        if len(shapes) != 1:
            raise SpecError(
                f"pattern spec {spec!r}: an .npy file feeds one input; the model has inputs "
                f"{list(names)}. Use an .npz with one key per input, or one spec per input "
                "separated by commas"
            )
        arrays = [load_npy(path, spec)]
    elif path.suffix == ".npz":
        arrays = load_npz(path, pattern_keys(key or None, spec, names, key_map))
    else:
        raise SpecError(
            f"pattern spec {spec!r}: expected file.npy, file.npz[:key], an image folder, "
            "module:function or random:N[:SEED]"
        )
    check_arrays(spec, arrays)
    return PatternSource(
        spec,
        int(arrays[0].shape[0]),
        [tuple(a.shape[1:]) for a in arrays],
        arrays,
        origin=str(path),
    )


def load_patterns(
    spec: str,
    input_shapes: Sequence[tuple[int | None, ...]],
    input_names: Sequence[str] | None = None,
    key_map: Mapping[str, str] | None = None,
    limit: int = 0,
    preprocess: str = "",
    resize: str = RESIZES[0],
) -> PatternSource:
    """Resolve a pattern spec for a model whose inputs have ``input_shapes`` (per pattern);
    ``limit`` > 0 keeps only the first ``limit`` patterns (a generator is read no further).
    Image folders are brought to the input's size as ``resize`` says and the model is fed
    them preprocessed as ``preprocess`` says (a Keras Applications family or
    ``module:function``; empty: in [0, 1]); either refuses patterns without an image folder.

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
    if resize not in RESIZES:
        raise ConfigError(f"resize: expected one of {RESIZES}, received {resize!r}")
    _check_images(spec, parts, preprocess, resize)
    images = (resize, resolve_preprocess(preprocess) if preprocess else None)
    if len(parts) > 1:
        if len(parts) != len(input_shapes):
            raise PatternError(
                f"pattern spec {spec!r} names {len(parts)} sources; the model has "
                f"{len(input_shapes)} inputs {names}: expected one source per input"
            )
        source = combine(
            spec,
            [
                _load_one(p, [s], [n], {n: key_map[n]} if n in key_map else {}, limit, images)
                for p, s, n in zip(parts, input_shapes, names, strict=True)
            ],
        )
    else:
        source = _load_one(spec, input_shapes, names, key_map, limit, images)
    if len(source.shapes) != len(input_shapes):
        raise PatternError(
            f"patterns {spec!r} feed {len(source.shapes)} input(s); the model has "
            f"{len(input_shapes)} {names}"
        )
    check_shapes(spec, source.shapes, input_shapes)
    if source.count == 0:
        raise PatternError(f"patterns {spec!r} hold zero patterns; expected at least one")
    return source


def _check_images(spec: str, parts: Sequence[str], preprocess: str, resize: str) -> None:
    """Refuse image options for patterns without an image folder: arrays and generators have
    no known pixel scale (0..1, 0..255, already preprocessed?), so they are fed as they are."""
    if any(Path(p).is_dir() for p in parts):
        return
    for flag, value, default in (("preprocess", preprocess, ""), ("resize", resize, RESIZES[0])):
        if value != default:
            raise ConfigError(
                f"{flag}: applies to image folders; patterns {spec!r} name none (arrays and "
                f"generators are fed as they are): drop --{flag} {value}, or apply it to the "
                "arrays before saving them"
            )
