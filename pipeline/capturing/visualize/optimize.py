"""The optimization loop (Lucid's ``render``): many channels as ONE batch, one row per channel,
all steps inside one traced TensorFlow function.

Each step: parameters -> images (``parameterize``) -> random transforms (image spaces,
``transforms``) -> the model input (``preprocess`` for "pixels") -> the layer's output ->
each row's own channel activation; the gradient of their sum gives every row the gradient of
its own objective (rows do not interact: the model runs with ``training=False``). Adam
(Kingma & Ba, beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected) ascends it; its state is
carried through a ``tf.while_loop``, so a batch of any size reuses the one trace.

Before the loop, a row whose unit has no gradient at its start (a ReLU unit that is 0 on the
near-grey start) is given the first of up to ATTEMPTS - 1 keyed restarts that has one
(``parameterize.restart_params``); a unit dead at all of them keeps its start, with a warning.

Afterwards the final images are built without transforms, as float32, and their activation is
measured by a separate forward pass on exactly those arrays: what is returned is what a reader
of the stored image gets by running the model on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import PassageError, SpecError
from ..calls import one_line
from ..framework import keras_and_tf
from ..selection import LayerInfo
from .objective import channel_activation, check_channels, layer_function, model_input
from .parameterize import initial_params, param_shape, restart_params, to_stored
from .space import Space
from .transforms import DRAWS, random_table, transform

log = logging.getLogger(__name__)

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
MAX_BATCH = 256
ATTEMPTS = 32  # the initial start and up to 31 restarts of a unit without gradient
# Bytes per channel: ~INPUT_COPIES input-sized float32 tensors (param, Adam's m and v, the
# gradient, image, transformed image, model input and their gradients) and ~OUTPUT_COPIES
# layer-output-sized ones (the layer's output and the activations before it, with gradients).
INPUT_COPIES = 12
OUTPUT_COPIES = 8


@dataclass(frozen=True)
class Settings:
    steps: int = 512
    seed: int = 0
    lr: float = 0.05
    transforms: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise SpecError(f"steps: expected an integer >= 1, received {self.steps!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise SpecError(f"lr: expected a positive number, received {self.lr!r}")
        if not isinstance(self.seed, int):
            raise SpecError(f"seed: expected an integer, received {self.seed!r}")


def rows_within(
    space: Space, layer_output_shape: Sequence[int | None], budget_bytes: int, cap: int
) -> int:
    """Batch rows whose tensors stay within ``budget_bytes`` (an estimate: INPUT_COPIES
    input-sized and OUTPUT_COPIES output-sized float32 tensors per row); 1..cap. A free output
    axis counts as the image's side."""
    side = max(space.shape[:2]) if space.is_image else 1
    out = math.prod(side if v is None else int(v) for v in layer_output_shape)
    per = 4 * (INPUT_COPIES * math.prod(space.shape) + OUTPUT_COPIES * out)
    return int(min(cap, max(1, budget_bytes // max(per, 1))))


def batch_channels(
    space: Space, layer_output_shape: Sequence[int | None], budget_bytes: int = 256 << 20
) -> int:
    """Channels per batch so that peak memory is bounded by the batch (``rows_within``): at
    least 1, at most MAX_BATCH."""
    return rows_within(space, layer_output_shape, budget_bytes, MAX_BATCH)


def traced(layer: LayerInfo, space: Space, *functions: Any) -> list[Any]:
    """The concrete functions of ``functions`` (input signatures given); a model or
    ``preprocess`` that cannot be traced with gradients raises one SpecError line."""
    try:
        return [f.get_concrete_function() for f in functions]
    except PassageError:
        raise
    except Exception as exc:
        what = "the model or its preprocess" if space.kind == "pixels" else "the model"
        raise SpecError(
            f"cannot differentiate layer {layer.name!r} with respect to the input: {what} "
            f"failed to trace: {one_line(exc)}; expected TensorFlow-traceable, differentiable "
            "operations (keras.ops / tf) from the input to the layer"
        ) from exc


class Visualizer:
    """Feature visualizations of ``layer``'s channels (module docstring); traced once here."""

    def __init__(self, model: Any, layer: LayerInfo, space: Space, settings: Settings) -> None:
        _, tf = keras_and_tf()
        self.layer, self.space, self.settings = layer, space, settings
        self._output = layer_function(model, layer)
        shape = param_shape(space)
        steps, lr = settings.steps, float(settings.lr)
        moves = settings.transforms and space.is_image

        def objective(param: Any, draws: Any, channels: Any) -> Any:
            images = to_stored(param, space)
            if moves:
                images = transform(images, draws, space)
            return tf.reduce_sum(
                channel_activation(self._output(model_input(images, space)), channels)
            )

        def step(t: Any, param: Any, m: Any, v: Any, table: Any, channels: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(param)
                total = objective(param, table[:, t], channels)
            grad = tape.gradient(total, param)
            m = BETA1 * m + (1.0 - BETA1) * grad
            v = BETA2 * v + (1.0 - BETA2) * grad * grad
            n = tf.cast(t + 1, tf.float32)
            m_hat = m / (1.0 - tf.pow(BETA1, n))
            v_hat = v / (1.0 - tf.pow(BETA2, n))
            return param + lr * m_hat / (tf.sqrt(v_hat) + EPS), m, v

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None, steps, DRAWS), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            autograph=False,
        )
        def optimize(param: Any, table: Any, channels: Any) -> Any:
            zeros = tf.zeros_like(param)
            _, param, _, _ = tf.while_loop(
                lambda t, *_: t < steps,
                lambda t, p, m, v: (t + 1, *step(t, p, m, v, table, channels)),
                (tf.constant(0), param, zeros, zeros),
                parallel_iterations=1,
            )
            return to_stored(param, space)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            autograph=False,
        )
        def alive(param: Any, channels: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(param)
                images = to_stored(param, space)
                total = tf.reduce_sum(
                    channel_activation(self._output(model_input(images, space)), channels)
                )
            grad = tape.gradient(total, param)
            return tf.reduce_any(tf.not_equal(tf.reshape(grad, (tf.shape(grad)[0], -1)), 0), 1)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, *space.shape), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            autograph=False,
        )
        def measure(images: Any, channels: Any) -> Any:
            return channel_activation(self._output(model_input(images, space)), channels)

        self._moves = moves
        self.dead: list[int] = []  # the last run's channels without gradient at any start
        self._optimize, self._alive, self._measure = traced(layer, space, optimize, alive, measure)

    def run(self, channels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Images (n, *space.shape) float32 in the stored space and their activations (n,)
        float32, measured on exactly those images without transforms."""
        _, tf = keras_and_tf()
        chosen = check_channels(self.layer, channels)
        space, settings = self.space, self.settings
        if not chosen:
            return np.zeros((0, *space.shape), np.float32), np.zeros((0,), np.float32)
        index = tf.constant(chosen, tf.int32)
        init = self._start(chosen, index)
        if self._moves:
            table = random_table(settings.seed, chosen, settings.steps)
        else:
            table = tf.zeros((len(chosen), settings.steps, DRAWS), tf.float32)
        images = np.asarray(self._optimize(init, table, index), dtype=np.float32)
        activation = np.asarray(self._measure(tf.constant(images), index), dtype=np.float32)
        log.debug("visualized %d channels of %s", len(chosen), self.layer.name)
        return images, activation

    def _start(self, chosen: list[int], index: Any) -> Any:
        """Each row's start: its initial parameters, or for a unit with no gradient there (a
        dead ReLU), the first of its restarts (``parameterize.restart_params``) that has one."""
        _, tf = keras_and_tf()
        seed = self.settings.seed
        start = initial_params(self.space, seed, chosen).numpy()
        dead = ~np.asarray(self._alive(start, index))
        attempt = 1
        while dead.any() and attempt < ATTEMPTS:
            # several restarts of every dead row in one call of at most len(chosen) rows (what
            # the batch's memory allows): the same starts as trying them in turn, fewer passes
            rows = np.flatnonzero(dead)
            block = range(attempt, min(ATTEMPTS, attempt + max(1, len(chosen) // rows.size)))
            names = [chosen[r] for r in rows]
            tries = np.concatenate(
                [restart_params(self.space, seed, names, a).numpy() for a in block]
            )
            which = tf.constant(np.tile(np.asarray(names, np.int32), len(block)))
            ok = np.asarray(self._alive(tries, which)).reshape(len(block), rows.size)
            for i, r in enumerate(rows):
                hits = np.flatnonzero(ok[:, i])
                if hits.size:  # the first restart with a gradient
                    start[r] = tries[hits[0] * rows.size + i]
                    dead[r] = False
            attempt = block.stop
        self.dead = [chosen[r] for r in np.flatnonzero(dead)]
        if dead.any():
            log.debug(
                "layer %s: channels %s have no gradient at %d random starts; their images stay "
                "at the grey start",
                self.layer.name,
                [chosen[r] for r in np.flatnonzero(dead)][:10],
                ATTEMPTS,
            )
        return tf.constant(start)

    def measure(self, images: np.ndarray, channels: Sequence[int]) -> np.ndarray:
        """Channel activations (n,) of stored-space ``images`` (n, *space.shape), row i for
        channel ``channels[i]``, without transforms."""
        _, tf = keras_and_tf()
        index = tf.constant(check_channels(self.layer, channels), tf.int32)
        return np.asarray(self._measure(tf.constant(images, tf.float32), index), np.float32)
