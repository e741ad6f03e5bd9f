"""Feature visualization figures (``passage visualize``), side by side in one run:

1. channels visualized per second, many channels optimized together as one batch
   (``Visualizer.run`` over every channel of a 64-channel Conv2D layer at once) / the same
   objective, steps and traced step optimized one channel at a time (``Visualizer.run([c])``
   for each channel, the way per-unit tools such as tf-keras-vis do it); same process,
   interleaved, one untimed warm-up each. Target >= 5.
2. peak RSS of visualizing every channel of a 256-channel Conv2D layer / only its first 64,
   the batch capped at 64 channels: each in a fresh child process (interpreter, TensorFlow and
   the model included). A ratio near 1 says memory is bounded by the batch, not by how many
   channels are visualized.
3. the whole ``passage visualize`` command, a fresh process, on a small captured and analyzed
   run of ``builtin:cnn`` (every layer, top patterns with SmoothGrad attribution, sheets
   drawn), nothing kept (``RUN/features/`` removed before each), beside ``passage info RUN``
   (the start-up every command pays): what the user waits for.

Both conv models are built here, seeded: Input(32, 32, 3) -> Conv2D(32, 3x3, relu) ->
Conv2D(C, 3x3, relu), C = 64 or 256; the second Conv2D is visualized."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import child_env, passage_cmd
from .figures import Figure
from .measure import interleaved, peak_rss
from .sizes import Sizes

log = logging.getLogger(__name__)

INPUT = (32, 32, 3)
LAYER = "conv_b"  # the visualized layer of the bench's conv models


def conv_model(channels: int) -> Any:
    """Input(32, 32, 3) -> Conv2D(32) -> Conv2D(``channels``), 3x3 kernels, relu, seeded."""
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=INPUT, name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_a", kernel_initializer=init(1))(
        inputs
    )
    x = keras.layers.Conv2D(channels, 3, activation="relu", name=LAYER, kernel_initializer=init(2))(
        x
    )
    return keras.Model(inputs, x, name=f"conv{channels}")


def visualizer(channels: int, steps: int) -> Any:
    """A ``Visualizer`` of ``LAYER`` of ``conv_model(channels)`` (traced once), image space
    [0, 1], transforms on."""
    from pipeline.capturing.probe import layer_infos
    from pipeline.capturing.visualize.optimize import Settings, Visualizer
    from pipeline.capturing.visualize.space import choose_space

    model = conv_model(channels)
    layer = next(info for info in layer_infos(model) if info.name == LAYER)
    space = choose_space(INPUT, 0.0, 1.0)
    return Visualizer(model, layer, space, Settings(steps=steps, seed=0))


class _Batched:
    """Every channel as one ``run`` call; keeps the last activations (checked finite)."""

    def __init__(self, vis: Any, channels: list[int]) -> None:
        self.vis, self.channels, self.activation = vis, channels, None

    def __call__(self) -> float:
        start = time.perf_counter()
        images, self.activation = self.vis.run(self.channels)
        elapsed = time.perf_counter() - start
        assert images.shape[0] == len(self.channels)
        return elapsed


class _OneAtATime(_Batched):
    """The baseline: ``run([c])`` for each channel in turn, the same traced step."""

    def __call__(self) -> float:
        import numpy as np

        start = time.perf_counter()
        acts = [self.vis.run([c])[1] for c in self.channels]
        elapsed = time.perf_counter() - start
        self.activation = np.concatenate(acts)
        return elapsed


def _speed_session(sizes: Sizes, vis: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """The three ways to visualize every channel of ``vis``'s layer (batched, one at a time
    through the same traced loop, one at a time with a Python loop over the steps), each
    warmed up once, then timed interleaved in one session: (the sides, their median times)."""
    channels = list(range(sizes.visualize_channels))
    sides = {
        "batched": _Batched(vis, channels),
        "one": _OneAtATime(vis, channels),
        "tool": _PerStep(vis, channels, sizes.visualize_steps),
    }
    quiet = logging.getLogger("pipeline.capturing.visualize")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the units without gradient, once per run([c]) otherwise
    try:
        for side in sides.values():  # untimed warm-up: any retracing for a batch size here
            side()
        times = interleaved(dict(sides), sizes.repeats)
    finally:
        quiet.setLevel(level)
    return sides, times


def _batched_figure(sizes: Sizes, sides: dict[str, Any], times: dict[str, float]) -> Figure:
    import numpy as np

    n, steps = sizes.visualize_channels, sizes.visualize_steps
    batched, single = sides["batched"], sides["one"]
    stuck = int(np.sum(batched.activation == 0))
    # the same work: both reach a finite objective for every channel; one channel's image does
    # not depend on its batch (the contract), so the activations agree closely
    assert np.isfinite(batched.activation).all() and np.isfinite(single.activation).all()
    scale = max(float(np.max(np.abs(single.activation))), 1e-12)
    agree = float(np.max(np.abs(batched.activation - single.activation))) / scale
    ours, base = n / times["batched"], n / times["one"]
    log.info("visualize: batched %.2f ch/s, one at a time %.2f ch/s", ours, base)
    return Figure(
        f"visualize channels/s, {n} channels batched / one channel at a time "
        f"(Conv2D {n} channels on 32x32x3, {steps} steps)",
        base,
        ours,
        "channels/s",
        ours / base,
        None,
        note=(
            f"Visualizer.run over all {n} channels at once vs run([c]) for each channel, the "
            f"same traced step, Fourier + decorrelated colour + transforms, {steps} steps; "
            f"one process, medians of {sizes.repeats} interleaved after one warm-up each; "
            f"largest difference of the activations reached, batched vs alone, relative to the "
            f"largest activation: {agree:.3g}; {stuck} of the {n} channels had no gradient at "
            "any start (their restarts are paid on both sides)"
        ),
    )


def per_step_tool(vis: Any, steps: int) -> Any:
    """One channel optimized the way per-unit tools run it (tf-keras-vis, Lucent): a Python loop
    over the steps, each step one call of a traced function (the same objective, the same
    parameterization, transforms and Adam as ``Visualizer``; traced once, reused by every
    channel, which is kinder to the baseline than an eager step). Returns ``run(channel) ->
    activation``."""
    import numpy as np
    import tensorflow as tf

    from pipeline.capturing.visualize.objective import channel_activation, model_input
    from pipeline.capturing.visualize.optimize import BETA1, BETA2, EPS
    from pipeline.capturing.visualize.parameterize import initial_params, param_shape, to_stored
    from pipeline.capturing.visualize.transforms import DRAWS, random_table, transform

    space, lr = vis.space, float(vis.settings.lr)
    shape = param_shape(space)

    @tf.function(
        input_signature=[
            tf.TensorSpec((1, *shape), tf.float32),
            tf.TensorSpec((1, *shape), tf.float32),
            tf.TensorSpec((1, *shape), tf.float32),
            tf.TensorSpec((), tf.int32),
            tf.TensorSpec((1, DRAWS), tf.float32),
            tf.TensorSpec((1,), tf.int32),
        ],
        autograph=False,
    )
    def step(param: Any, m: Any, v: Any, t: Any, draws: Any, channel: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(param)
            images = transform(to_stored(param, space), draws, space)
            total = tf.reduce_sum(
                channel_activation(vis._output(model_input(images, space)), channel)
            )
        grad = tape.gradient(total, param)
        m = BETA1 * m + (1.0 - BETA1) * grad
        v = BETA2 * v + (1.0 - BETA2) * grad * grad
        n = tf.cast(t + 1, tf.float32)
        update = lr * (m / (1.0 - BETA1**n)) / (tf.sqrt(v / (1.0 - BETA2**n)) + EPS)
        return param + update, m, v

    def run(channel: int) -> float:
        index = tf.constant([channel], tf.int32)
        param = initial_params(space, vis.settings.seed, [channel])
        m = v = tf.zeros_like(param)
        table = random_table(vis.settings.seed, [channel], steps)
        for t in range(steps):
            param, m, v = step(param, m, v, tf.constant(t), table[:, t], index)
        images = np.asarray(to_stored(param, space), np.float32)
        return float(vis.measure(images, [channel])[0])

    return run


class _PerStep(_Batched):
    """The baseline of the issue's target: each channel alone, a Python loop over its steps."""

    def __init__(self, vis: Any, channels: list[int], steps: int) -> None:
        super().__init__(vis, channels)
        self.run = per_step_tool(vis, steps)

    def __call__(self) -> float:
        import numpy as np

        start = time.perf_counter()
        acts = [self.run(c) for c in self.channels]
        elapsed = time.perf_counter() - start
        self.activation = np.asarray(acts)
        return elapsed


def _per_step_figure(sizes: Sizes, sides: dict[str, Any], times: dict[str, float]) -> Figure:
    import numpy as np

    n, steps = sizes.visualize_channels, sizes.visualize_steps
    batched, tool = sides["batched"], sides["tool"]
    assert np.isfinite(batched.activation).all() and np.isfinite(tool.activation).all()
    ours, base = n / times["batched"], n / times["tool"]
    return Figure(
        f"visualize channels/s, {n} channels batched / one channel at a time with a Python "
        f"loop over the steps (Conv2D {n} channels on 32x32x3, {steps} steps)",
        base,
        ours,
        "channels/s",
        ours / base,
        (">=", 5.0),
        note=(
            f"the way per-unit tools run (tf-keras-vis, Lucent): per channel, {steps} calls of "
            "one traced step (same objective, parameterization, transforms, Adam; no restarts "
            "for units without gradient, which the batched side still pays); one process, "
            f"medians of {sizes.repeats} interleaved after one warm-up each"
        ),
    )


def _ceiling_figure(sizes: Sizes) -> Figure:
    """What batching can give at most here: the bare forward and backward pass of the model
    (input gradient of the layer's channel means, the steps in one traced loop, no
    parameterization, no transforms) per image at batch ``visualize_channels`` / at batch 1."""
    import keras
    import tensorflow as tf

    n, steps = sizes.visualize_channels, sizes.visualize_steps
    model = conv_model(n)
    layer = keras.Model(model.inputs, model.get_layer(LAYER).output)

    def looped(batch: int) -> Any:
        x0 = tf.random.stateless_uniform((batch, *INPUT), seed=(0, batch))

        @tf.function(autograph=False)
        def run(x: Any) -> Any:
            def body(t: Any, x: Any) -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    total = tf.reduce_sum(tf.reduce_mean(layer(x, training=False), axis=(1, 2)))
                return t + 1, x + 0.01 * tape.gradient(total, x)

            return tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0), x))[1]

        run(x0)  # traced and warmed up here

        def timed() -> float:
            start = time.perf_counter()
            run(x0).numpy()
            return time.perf_counter() - start

        return timed

    times = interleaved({"one": looped(1), "batched": looped(n)}, sizes.repeats)
    ours, base = n / times["batched"], 1 / times["one"]
    return Figure(
        f"ceiling: bare forward + backward pass per image, batch {n} / batch 1 (same model, "
        f"{steps} steps)",
        base,
        ours,
        "images/s",
        ours / base,
        None,
        note=(
            "the model alone, the input gradient of the layer's channel means, the steps in "
            "one traced loop: how much batching can speed up this model's optimization on "
            "this machine at most (near 1: the pass is compute-bound even at batch 1)"
        ),
    )


def _rss_child(channels: int, batch: int, steps: int, out: Path) -> None:
    """In a fresh process: visualize the first ``channels`` channels of the 256-channel layer
    ``batch`` channels at a time (the images kept, as the runner writes them file by file)."""
    import numpy as np

    start = time.perf_counter()
    vis = visualizer(256, steps)
    done = 0
    for first in range(0, channels, batch):
        images, activation = vis.run(list(range(first, min(first + batch, channels))))
        assert np.isfinite(activation).all()
        done += images.shape[0]
    out.write_text(json.dumps({"channels": done, "seconds": time.perf_counter() - start}))


def _rss_figure(sizes: Sizes, tmp: Path) -> Figure:
    small, large = sizes.visualize_rss
    batch, steps = sizes.visualize_rss_batch, sizes.visualize_rss_steps
    peaks, done = {}, {}
    # the two children of the figure, then the large one in one uncapped batch: for scale,
    # what the batch itself costs (the ratio is near 1 because of the cap, not because the
    # interpreter and TensorFlow hide everything else)
    for key, n, b in (("small", small, batch), ("large", large, batch), ("uncapped", large, large)):
        out = tmp / f"visualize-rss-{key}.json"
        cmd = [sys.executable, "-m", "bench.visualize_bench", "rss", str(n), str(b)]
        peaks[key], elapsed = peak_rss([*cmd, str(steps), str(out)], env=child_env())
        done[key] = json.loads(out.read_text())
        log.info(
            "visualize rss: %d channels, batch %d: %.0f MiB, %.1f s",
            n,
            b,
            peaks[key] / 2**20,
            elapsed,
        )
    return Figure(
        f"visualize peak RSS, {large} / {small} channels of a 256-channel Conv2D, batch {batch}",
        peaks["small"] / 2**20,
        peaks["large"] / 2**20,
        "MiB",
        peaks["large"] / peaks["small"],
        ("<=", 1.25),
        note=(
            f"fresh child per side (interpreter, TensorFlow, model included), {steps} steps; "
            f"{done['large']['channels']} channels in {done['large']['seconds']:.1f} s vs "
            f"{done['small']['channels']} in {done['small']['seconds']:.1f} s: {large // small}x "
            f"the channels, memory bounded by the batch; for scale, the {large} channels in "
            f"one batch of {large}: {peaks['uncapped'] / 2**20:,.0f} MiB"
        ),
    )


def _command_figure(sizes: Sizes, tmp: Path) -> Figure:
    from pipeline.analysis.runner import analyze
    from pipeline.capturing.stream import capture
    from pipeline.config import SelectConfig

    from .common import capture_config

    n, steps = sizes.visualize_patterns, sizes.visualize_command_steps
    folder = tmp / "visualize-command"
    select = SelectConfig(rule="all")
    config = capture_config(folder / "run", n, 0, model="builtin:cnn", select=select)
    run = capture(config, quiet=True)
    analyze(run.path, pictures=False, quiet=True)
    env = child_env()
    cmd = passage_cmd("visualize", str(run.path), "--steps", str(steps))
    if sizes.visualize_layers:
        cmd += ["--layers", *sizes.visualize_layers]

    def timed(command: list[str], fresh: bool) -> float:
        if fresh:
            shutil.rmtree(run.path / "features", ignore_errors=True)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-2000:]}"
            )
        return elapsed

    timed(cmd, True)  # warm-up (and the check that it works)
    from pipeline.store import open_run

    visualized = open_run(run.path)
    layers = visualized.feature_layers
    channels = sum(len(visualized.features_of(name)["channels"]) for name in layers)
    times = interleaved(
        {
            "info": lambda: timed(passage_cmd("info", str(run.path)), False),
            "cold": lambda: timed(cmd, True),
        },
        sizes.repeats,
    )
    shutil.rmtree(folder, ignore_errors=True)
    only = f", --layers {' '.join(sizes.visualize_layers)}" if sizes.visualize_layers else ""
    return Figure(
        f"passage visualize, whole command, nothing kept / passage info "
        f"(builtin:cnn, {n} patterns, --steps {steps}{only})",
        times["info"],
        times["cold"],
        "s",
        times["cold"] / times["info"],
        None,
        note=(
            f"{len(layers)} layers ({only.lstrip(', ') or 'all'}), "
            f"{channels} "
            "channels visualized, top patterns with "
            "SmoothGrad attribution (analysis present), sheets drawn; fresh processes, "
            f"medians of {sizes.repeats} interleaved; baseline: `passage info RUN`, the "
            "start-up every command pays"
        ),
    )


def visualize_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    vis = visualizer(sizes.visualize_channels, sizes.visualize_steps)
    sides, times = _speed_session(sizes, vis)  # the batched side timed once for both figures
    return [
        _per_step_figure(sizes, sides, times),
        _batched_figure(sizes, sides, times),
        _ceiling_figure(sizes),
        _rss_figure(sizes, tmp),
        _command_figure(sizes, tmp),
    ]


if __name__ == "__main__":  # the peak-RSS child: rss CHANNELS BATCH STEPS OUT
    _, what, channels, batch, steps, out = sys.argv
    assert what == "rss", what
    _rss_child(int(channels), int(batch), int(steps), Path(out))
