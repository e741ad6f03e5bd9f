"""Where a unit looks in a pattern: SmoothGrad (Smilkov et al. 2017), the mean over ``samples``
noisy copies ``x + N(0, sigma^2)`` (sigma = ``noise * (high - low)``) of the gradient of the
channel's activation with respect to the input, signed, in the stored space (for "pixels": with
respect to the pixels, through the preprocessing).

Vectorized: rows are (channel, pattern) pairs, and a chunk of rows times a chunk of samples is
one traced forward and backward pass; chunks are sized so that their tensors stay within a
memory budget (the same estimate as ``optimize.batch_channels``). The noise of sample s is one
stateless normal draw (K, *shape) from (seed, s), slot k for every channel's k-th pattern
(common random numbers): a channel's maps do not depend on which channels share its batch or
on the chunking, and a rerun gives the same arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import SpecError
from ..framework import keras_and_tf
from ..selection import LayerInfo
from .objective import channel_activation, check_channels, layer_function, model_input
from .optimize import rows_within, traced
from .space import Space

MAX_ROWS = 1024  # noisy copies per traced pass, whatever the budget


class Attributor:
    """SmoothGrad maps of ``layer``'s channels on given patterns (module docstring)."""

    def __init__(
        self,
        model: Any,
        layer: LayerInfo,
        space: Space,
        samples: int = 32,
        noise: float = 0.15,
        seed: int = 0,
        budget_bytes: int = 256 << 20,
    ) -> None:
        _, tf = keras_and_tf()
        if not isinstance(samples, int) or samples < 1:
            raise SpecError(f"samples: expected an integer >= 1, received {samples!r}")
        if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
            raise SpecError(f"noise: expected a number >= 0, received {noise!r}")
        self.layer, self.space = layer, space
        self.samples, self.seed = samples, int(seed)
        self.sigma = float(noise) * (space.high - space.low)
        self.rows = rows_within(space, layer.shape, budget_bytes, MAX_ROWS)
        output = layer_function(model, layer)
        shape = tuple(space.shape)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((None, None, *shape), tf.float32),
            ],
            autograph=False,
        )
        def gradients(x: Any, channels: Any, slots: Any, noise: Any) -> Any:
            q, m = tf.shape(noise)[0], tf.shape(x)[0]
            noisy = x[None] + tf.gather(noise, slots, axis=1)  # (q, m, *shape)
            flat = tf.reshape(noisy, tf.concat([[q * m], tf.shape(x)[1:]], 0))
            with tf.GradientTape() as tape:
                tape.watch(flat)
                act = channel_activation(output(model_input(flat, space)), tf.tile(channels, [q]))
                total = tf.reduce_sum(act)
            grad = tape.gradient(total, flat)
            return tf.reduce_sum(tf.reshape(grad, tf.shape(noisy)), axis=0)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            autograph=False,
        )
        def measure(x: Any, channels: Any) -> Any:
            return channel_activation(output(model_input(x, space)), channels)

        self._gradients, self._measure = traced(layer, space, gradients, measure)

    def _noise(self, slots: int, first: int, count: int) -> Any:
        """(count, slots, *shape) float32: sigma * N(0, 1) of samples [first, first+count)."""
        _, tf = keras_and_tf()
        shape = tuple(self.space.shape)
        draws = [
            tf.random.stateless_normal((slots, *shape), seed=tf.constant([self.seed, s], tf.int64))
            for s in range(first, first + count)
        ]
        return self.sigma * tf.stack(draws)

    def run(self, channels: Sequence[int], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``inputs`` (n, K, *space.shape) in the stored space, row i the patterns of channel
        ``channels[i]`` -> SmoothGrad maps (n, K, *shape) float32 and the clean activations
        (n, K) float32."""
        _, tf = keras_and_tf()
        chosen = check_channels(self.layer, channels)
        shape = tuple(self.space.shape)
        x = np.asarray(inputs, dtype=np.float32)
        if x.ndim != 2 + len(shape) or x.shape[0] != len(chosen) or x.shape[2:] != shape:
            raise SpecError(
                f"attribution inputs: expected shape ({len(chosen)}, K, "
                f"{', '.join(map(str, shape))}), received {x.shape}"
            )
        n, k = x.shape[:2]
        if n * k == 0:
            return np.zeros(x.shape, np.float32), np.zeros((n, k), np.float32)
        rows = x.reshape(n * k, *shape)
        ch = np.repeat(np.asarray(chosen, np.int32), k)
        slots = np.tile(np.arange(k, dtype=np.int32), n)
        q = max(1, min(self.samples, self.rows // k))  # noise (q, K, ...) within the budget
        m = max(1, self.rows // q)
        total = np.zeros_like(rows)
        for s0 in range(0, self.samples, q):
            noise = self._noise(k, s0, min(q, self.samples - s0))
            for r0 in range(0, n * k, m):
                part = slice(r0, r0 + m)
                total[part] += np.asarray(
                    self._gradients(
                        tf.constant(rows[part]),
                        tf.constant(ch[part]),
                        tf.constant(slots[part]),
                        noise,
                    )
                )
        maps = (total / np.float32(self.samples)).astype(np.float32)
        clean = np.concatenate(
            [
                np.asarray(
                    self._measure(tf.constant(rows[r : r + self.rows]), ch[r : r + self.rows])
                )
                for r in range(0, n * k, self.rows)
            ]
        )
        return maps.reshape(x.shape), clean.astype(np.float32).reshape(n, k)
