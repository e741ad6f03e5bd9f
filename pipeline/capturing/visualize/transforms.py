"""Transformation robustness (Lucid's ``optvis/transform``): during optimization each image row
is padded, jittered, scaled and rotated at random before the model sees it, so the image that
wins is one the unit responds to wherever and however large it appears, not a high-frequency
pattern tuned to one pixel grid.

All four are one affine map per row, applied by ONE batched
``ImageProjectiveTransformV3`` (bilinear, per-row matrices) at the image's own size: the
output pixel p reads the input at ``centre + R(-angle) (p - centre - shift) / scale``; whatever
falls outside the image reads the constant ``space.mid`` (the padding of Lucid's ``pad``, then
the crop back to H x W). Amounts, for an image of side ``s = min(H, W)``: shift an integer in
[-J, J] per axis with ``J = max(1, round(s * 12 / 224))`` (Lucid's jitter 8 then 4 at 224
pixels), scale uniform in [0.9, 1.1], angle uniform in [-10, 10] degrees.

Randomness: a row's four numbers at step t are row t of a (steps, 4) stateless uniform table
drawn from its channel's key (``parameterize.channel_keys``): independent of its batch-mates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..framework import keras_and_tf
from .parameterize import MOVES, keyed_draws
from .space import Space

SCALE = (0.9, 1.1)
ANGLE = 10.0  # degrees, either way
DRAWS = 4  # shift y, shift x, scale, angle


def jitter_of(space: Space) -> int:
    """The largest shift in pixels (per axis) for this image size."""
    h, w = space.shape[:2]
    return max(1, round(min(h, w) * 12 / 224))


def random_table(seed: int, channels: Sequence[int], steps: int) -> Any:
    """(n, steps, DRAWS) float32 uniform in [0, 1): row i from channel_keys(seed, c_i)[1]."""
    return keyed_draws((steps, DRAWS), seed, channels, which=MOVES, uniform=True)


def matrices(draws: Any, space: Space) -> Any:
    """(n, 8) output->input projective matrices of the affine maps the draws (n, 4) give."""
    _, tf = keras_and_tf()
    h, w = space.shape[:2]
    j = jitter_of(space)
    ty = tf.floor(draws[:, 0] * (2 * j + 1)) - j
    tx = tf.floor(draws[:, 1] * (2 * j + 1)) - j
    scale = SCALE[0] + (SCALE[1] - SCALE[0]) * draws[:, 2]
    angle = (2.0 * draws[:, 3] - 1.0) * (ANGLE * math.pi / 180.0)
    a = tf.cos(angle) / scale
    b = tf.sin(angle) / scale
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ox, oy = cx + tx, cy + ty  # where the input's centre lands
    zero = tf.zeros_like(a)
    return tf.stack([a, b, cx - a * ox - b * oy, -b, a, cy + b * ox - a * oy, zero, zero], axis=1)


def transform(images: Any, draws: Any, space: Space) -> Any:
    """Images (n, H, W, C) moved by their rows' draws (n, 4), same size, outside = mid."""
    _, tf = keras_and_tf()
    h, w = space.shape[:2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=matrices(draws, space),
        output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(space.mid, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
