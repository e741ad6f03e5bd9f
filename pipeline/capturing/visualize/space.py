"""Which space a visualization is optimized in (pure: no TensorFlow).

- ``"image"``: one pattern is (H, W, C) with C 1 or 3: Lucid's Fourier parameterization,
  decorrelated colour for C = 3, transformation robustness, a sigmoid into [low, high].
- ``"pixels"``: the same, when the run fed the model ``preprocess(pixels)`` (``--preprocess``):
  the image is optimized and stored as pixels in [0, 255] and the model sees its preprocessing.
- ``"input"``: anything else (the article's (50, 50) patterns, sequences, vectors): optimized in
  the input's own space, ``low + (high - low) * sigmoid(param)``, without transforms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import SpecError

KINDS = ("image", "pixels", "input")
PIXELS = (0.0, 255.0)  # the range of "pixels" images
COLOURS = (1, 3)  # last-axis sizes an image input may have


@dataclass(frozen=True)
class Space:
    """One stored image's kind, shape (the optimized size) and value range."""

    kind: str  # "image" | "pixels" | "input"
    shape: tuple[int, ...]
    low: float
    high: float
    preprocess: Callable[[Any], Any] | None = None  # pixels tensor -> model input tensor

    @property
    def is_image(self) -> bool:
        return self.kind in ("image", "pixels")

    @property
    def mid(self) -> float:
        """The grey a transformed image is padded with."""
        return (self.low + self.high) / 2.0


def is_image_shape(shape: Sequence[int | None]) -> bool:
    """An (H, W, C) input with C 1 or 3 (H, W may be free)."""
    return len(shape) == 3 and shape[2] in COLOURS


def _check_range(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise SpecError(
            f"visualize needs the range of the run's patterns as finite low < high; received "
            f"low={low!r}, high={high!r} (constant or non-finite patterns cannot bound an "
            "optimized input)"
        )


def _size_of(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(not isinstance(v, int) or v < 2 for v in size):
        raise SpecError(f"size: expected (height, width) of integers >= 2, received {size!r}")
    return int(size[0]), int(size[1])


def choose_space(
    input_shape: Sequence[int | None],
    low: float,
    high: float,
    preprocess: Callable[[Any], Any] | None = None,
    size: tuple[int, int] | None = None,
) -> Space:
    """The space one pattern of shape ``input_shape`` is optimized in (module docstring).

    ``size`` (H, W) is needed for an image input whose height or width is free, and refused for
    a fixed-size image of another size or for a non-image input."""
    shape = tuple(input_shape)
    if is_image_shape(shape):
        h, w, c = shape
        if size is not None:
            sh, sw = _size_of(size)
            if h is not None and w is not None and (sh, sw) != (h, w):
                raise SpecError(
                    f"size {sh}x{sw} differs from the model's fixed input size {h}x{w}; leave "
                    "size out (it is only for models with a free image size)"
                )
            h, w = sh, sw
        if h is None or w is None:
            raise SpecError(
                f"the model's input {shape} has a free height or width; give the size to "
                "optimize at, e.g. size=(224, 224) (--size 224x224)"
            )
        if preprocess is not None:
            return Space("pixels", (int(h), int(w), int(c)), *PIXELS, preprocess)
        _check_range(low, high)
        return Space("image", (int(h), int(w), int(c)), float(low), float(high))
    if size is not None:
        raise SpecError(
            f"size applies to image inputs (height, width, 1 or 3 colours); the model's input "
            f"is {shape}: leave size out"
        )
    if preprocess is not None:
        raise SpecError(
            f"the run's patterns were preprocessed (--preprocess), which applies to images, but "
            f"the model's input {shape} is not an image (height, width, 1 or 3 colours)"
        )
    if any(v is None for v in shape):
        raise SpecError(
            f"the model's input {shape} has a free axis; visualize optimizes inputs of a fixed "
            "shape (only an image's height and width may be given with size)"
        )
    _check_range(low, high)
    return Space("input", tuple(int(v) for v in shape), float(low), float(high))
