"""Image preprocessing as the model expects it (``--preprocess``), and the notice for a Keras
Application captured without it.

An image folder is read as pixels scaled to [0, 1] (what is shown and kept with the run). With
``--preprocess NAME`` the model is fed ``keras.applications.NAME.preprocess_input`` of the
0..255 pixel values (the 8-bit values come back exactly: ``k / 255 * 255 == k`` in float32);
with ``--preprocess module:function`` (or ``path/file.py:function``) it is fed what that
function returns for a float32 batch (n, H, W, C) in 0..255. Keras (and TensorFlow) is
imported only when a NAME is resolved or a family is guessed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, PatternError
from ..models import load_callable

log = logging.getLogger(__name__)

NOT_FAMILIES = ("imagenet_utils",)  # keras.applications modules that are not a model family

# model name (as keras.applications builds it, lower-cased) -> the family it looks like; the
# first match wins (resnet50v2 before resnet50, mobilenetv2 before mobilenet).
NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"resnet\d+v2", "resnet_v2"),
    (r"resnet50", "resnet50"),
    (r"resnet\d+", "resnet"),
    (r"vgg16", "vgg16"),
    (r"vgg19", "vgg19"),
    (r"mobilenetv2_", "mobilenet_v2"),
    (r"mobilenetv3", "mobilenet_v3"),
    (r"mobilenet_", "mobilenet"),
    (r"efficientnetv2", "efficientnet_v2"),
    (r"efficientnetb\d", "efficientnet"),
    (r"convnext_", "convnext"),
    (r"inception_v3", "inception_v3"),
    (r"inception_resnet_v2", "inception_resnet_v2"),
    (r"xception", "xception"),
    (r"densenet\d+", "densenet"),
    (r"nasnet", "nasnet"),
    (r"regnet", "regnet"),
)


def keras_families() -> list[str]:
    """The Keras Applications families this Keras has a ``preprocess_input`` for."""
    from ..framework import keras_and_tf

    keras, _ = keras_and_tf()
    apps = keras.applications
    return sorted(
        name
        for name in dir(apps)
        if not name.startswith("_")
        and name not in NOT_FAMILIES
        and callable(getattr(getattr(apps, name), "preprocess_input", None))
    )


def is_function_spec(spec: str) -> bool:
    """``module:function`` or ``path/file.py:function`` rather than a family NAME."""
    return ":" in spec


@dataclass(frozen=True)
class Preprocess:
    """``--preprocess SPEC`` resolved: ``function`` of a float32 batch in 0..255; ``family``
    is the Keras Applications family (None for a user's function)."""

    spec: str
    function: Callable[[np.ndarray], object]
    family: str | None = None

    def check(self, shape: tuple[int, ...], patterns: str) -> None:
        """Refuse a Keras family for images that are not RGB (those functions flip and
        center three channels)."""
        if self.family is not None and (len(shape) != 3 or shape[-1] != 3):
            raise ConfigError(
                f"preprocess: keras.applications.{self.family}.preprocess_input expects RGB "
                f"images (H, W, 3); the images of {patterns!r} feed an input of shape "
                f"{tuple(shape)}: capture without --preprocess, or give module:function"
            )

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        """What the model is fed for ``unit``, a batch of images in [0, 1]."""
        pixels = np.asarray(unit, dtype=np.float32) * np.float32(255.0)
        out = np.asarray(self.function(pixels))
        if out.shape != pixels.shape or out.dtype.kind not in "biuf":
            raise PatternError(
                f"preprocess {self.spec!r}: expected an array of numbers of the batch's shape "
                f"{pixels.shape}, received {out.dtype} {out.shape}; return one preprocessed "
                "image per image"
            )
        return out


def resolve_preprocess(spec: str) -> Preprocess:
    """The preprocessing ``spec`` names: a Keras Applications family or ``module:function``."""
    if is_function_spec(spec):
        return Preprocess(spec, load_callable(spec, "preprocess"))
    families = keras_families()
    if spec not in families:
        raise ConfigError(
            f"preprocess: unknown name {spec!r}; expected one of the Keras Applications "
            f"families {', '.join(families)}, or module:function (path/file.py:function)"
        )
    from ..framework import keras_and_tf

    keras, _ = keras_and_tf()
    return Preprocess(spec, getattr(keras.applications, spec).preprocess_input, spec)


def family_of(model_name: str, families: Sequence[str]) -> str | None:
    """The Keras Applications family a model named ``model_name`` looks like (None: none of
    ``families``): 'mobilenetv2_1.00_224' -> 'mobilenet_v2', 'efficientnetb0' ->
    'efficientnet'."""
    name = model_name.lower()
    for pattern, family in NAME_PATTERNS:
        if re.fullmatch(rf"{pattern}.*", name) and family in families:
            return family
    return None


def family_notice(model_name: str, families: Sequence[str]) -> str | None:
    """The one-line notice for a model that looks like a Keras Application fed an image
    folder without ``--preprocess`` (None when it does not look like one)."""
    family = family_of(model_name, families)
    if family is None:
        return None
    return (
        f"model {model_name!r} looks like keras.applications.{family}, whose weights expect "
        f"its own preprocessing of 0..255 pixels, but the images are fed scaled to [0, 1]: "
        f"pass --preprocess {family} (or [capture] preprocess = {family!r})"
    )


def notice_preprocess(model_name: str, kind: str, preprocess: str) -> None:
    """Log the one-line notice when a model that looks like a Keras Application is fed an
    image folder (source ``kind``) without ``preprocess``."""
    if preprocess or "images" not in kind.split("+"):
        return
    notice = family_notice(model_name, keras_families())
    if notice is not None:
        log.warning("%s", notice)
