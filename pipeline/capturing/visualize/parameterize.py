"""How an optimized image is parameterized (Lucid's ``optvis/param``, TensorFlow 2 ops).

Image spaces ("image", "pixels"): per row a spectrum, real and imaginary parts per colour over
the rFFT grid (H, W//2 + 1), scaled by ``1 / max(frequency, 1 / max(H, W)) ** DECAY`` (times
sqrt(H W), which TensorFlow's normalized inverse FFT divides back out), so that every spatial
frequency starts and moves at the amplitude natural images have and Adam's steps do not favour
high-frequency noise; its inverse FFT, divided by 4 as Lucid does, is a decorrelated image.
For 3 colours that image is multiplied by the square root of ImageNet's colour correlation
(``COLOR_SQRT``: Lucid's ``color_correlation_svd_sqrt`` divided by its largest column norm),
so one parameter moves correlated colours together; then a sigmoid maps it into
[low, high]. Space "input": the parameter has the input's shape and the input is
``low + (high - low) * sigmoid(param)``.

Initial parameters of channel ``c`` are a stateless normal draw (std ``INIT_STD``) from a key
derived from (seed, c) alone: a channel's start does not depend on its batch-mates. A unit
that is dead there (a ReLU unit that is 0 on the near-grey start has no gradient) is restarted
from draws ``restart_params`` makes: as spread as uniform noise over [low, high] (logits of std
pi/sqrt(3), the logistic distribution's, i.e. the logit of a uniform variable), keyed by
(seed, c, attempt).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..framework import keras_and_tf
from .space import Space

INIT_STD = 0.01  # Lucid's spectrum / pixel init scale
DECAY = 1.0  # Lucid's decay_power
FOURIER_DIVISOR = 4.0  # Lucid divides the inverse FFT by 4
RESTART_LOGIT_STD = math.pi / math.sqrt(3)  # logit(U(0, 1)) has this std
# Lucid's color_correlation_svd_sqrt (ImageNet), rows = RGB; divided by its max column norm.
_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float64
)
COLOR_SQRT = (_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(_CORRELATION_SVD_SQRT, axis=0))).astype(
    np.float32
)


def rfft_freqs(h: int, w: int) -> np.ndarray:
    """|frequency| (cycles per pixel) of each rFFT coefficient of an h x w image: (h, w//2+1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int) -> np.ndarray:
    """Lucid's per-coefficient scale: 1 / max(f, 1/max(h, w)) ** DECAY * sqrt(h w)."""
    freqs = rfft_freqs(h, w)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** DECAY
    return (scale * np.sqrt(h * w)).astype(np.float32)


def param_shape(space: Space) -> tuple[int, ...]:
    """One row's parameter shape: (2, C, H, W//2+1) for images, the input shape otherwise."""
    if space.is_image:
        h, w, c = space.shape
        return (2, c, h, w // 2 + 1)
    return tuple(space.shape)


def channel_keys(seed: int, channel: int) -> tuple[Any, Any]:
    """Two independent stateless seeds of channel ``channel``: (init, transforms)."""
    _, tf = keras_and_tf()
    keys = tf.random.experimental.stateless_split(
        tf.constant([seed, channel], dtype=tf.int64), num=2
    )
    return keys[0], keys[1]


INIT, MOVES = 0, 1  # which of channel_keys' two seeds a draw uses


@functools.lru_cache(maxsize=64)
def _drawer(shape: tuple[int, ...], which: int, uniform: bool, fold: bool) -> Any:
    """A traced function: rows (n, 3) of (seed, channel, attempt) -> (n, *shape) float32, row
    i drawn from ``channel_keys(seed, channel)[which]`` (folded with ``attempt`` when
    ``fold``): the very numbers of one eager draw per row, in one call instead of n."""
    _, tf = keras_and_tf()

    def one(row: Any) -> Any:
        key = tf.random.experimental.stateless_split(row[:2], num=2)[which]
        if fold:
            key = tf.random.experimental.stateless_fold_in(key, tf.cast(row[2], tf.int32))
        if uniform:
            return tf.random.stateless_uniform(shape, seed=key)
        return tf.random.stateless_normal(shape, seed=key)

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.int64)], autograph=False)
    def draw(rows: Any) -> Any:
        return tf.map_fn(one, rows, fn_output_signature=tf.TensorSpec(shape, tf.float32))

    return draw


def keyed_draws(
    shape: Sequence[int],
    seed: int,
    channels: Sequence[int],
    *,
    which: int,
    uniform: bool = False,
    attempt: int | None = None,
) -> Any:
    """(n, *shape) float32: one stateless draw per channel (module docstring), normal or
    uniform in [0, 1), from the channel's ``which`` key (folded with ``attempt``)."""
    _, tf = keras_and_tf()
    rows = np.array([[seed, int(c), attempt or 0] for c in channels], np.int64).reshape(-1, 3)
    if not len(rows):
        return tf.zeros((0, *shape), tf.float32)
    return _drawer(tuple(int(d) for d in shape), which, uniform, attempt is not None)(rows)


def initial_params(space: Space, seed: int, channels: Sequence[int]) -> Any:
    """(n, *param_shape) float32: each row a normal draw from channel_keys(seed, c)[0]."""
    return keyed_draws(param_shape(space), seed, channels, which=INIT) * INIT_STD


def logit_std(space: Space, std: float) -> float:
    """The RMS (over pixels) std of the image logits a spectrum of i.i.d. N(0, std^2) real and
    imaginary parts gives, before colour mixing (Parseval over the rFFT half-plane; columns
    other than 0 and W/2 stand for two coefficients of the full spectrum)."""
    h, w, _ = space.shape
    weight = np.full(w // 2 + 1, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    energy = float((spectrum_scale(h, w).astype(np.float64) ** 2 * weight).sum()) * 2 * std**2
    return math.sqrt(energy / (h * w) ** 2) / FOURIER_DIVISOR


def restart_params(space: Space, seed: int, channels: Sequence[int], attempt: int) -> Any:
    """(n, *param_shape) float32: restart ``attempt`` (>= 1) of each channel, drawn from
    (seed, c, attempt) with logits of std RESTART_LOGIT_STD."""
    std = RESTART_LOGIT_STD / logit_std(space, 1.0) if space.is_image else RESTART_LOGIT_STD
    return keyed_draws(param_shape(space), seed, channels, which=INIT, attempt=attempt) * std


def _fourier_image(param: Any, space: Space) -> Any:
    _, tf = keras_and_tf()
    h, w, c = space.shape
    spectrum = tf.complex(param[:, 0], param[:, 1]) * tf.cast(
        tf.constant(spectrum_scale(h, w)), tf.complex64
    )
    image = tf.signal.irfft2d(spectrum, fft_length=[h, w])  # (n, C, H, W)
    image = tf.transpose(image, (0, 2, 3, 1)) / FOURIER_DIVISOR
    if c == 3:
        image = tf.einsum("nhwc,dc->nhwd", image, tf.constant(COLOR_SQRT))
    return image


def to_stored(param: Any, space: Space) -> Any:
    """Parameters (n, *param_shape) -> images (n, *space.shape) in the stored space, within
    [low, high] (differentiable)."""
    _, tf = keras_and_tf()
    logits = _fourier_image(param, space) if space.is_image else param
    return space.low + (space.high - space.low) * tf.sigmoid(logits)
