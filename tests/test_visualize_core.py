"""Feature visualization against planted units: a first Conv2D whose filters are set by hand to
known detectors (an oriented grating at 45 degrees, a red blob, vertical and horizontal
stripes). The optimized images must show the plant (dominant orientation from the FFT power,
the colour, correlation with the filter), reach the activation Keras itself computes on the
returned float32 arrays, beat every random pattern, and be reproducible (a rerun is
bit-identical; a channel's image does not depend on its batch-mates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from externals import need_keras

keras = need_keras()

from pipeline.capturing.builtin_models import builtin_model  # noqa: E402
from pipeline.capturing.framework import keras_and_tf  # noqa: E402
from pipeline.capturing.probe import layer_infos  # noqa: E402
from pipeline.capturing.visualize import (  # noqa: E402
    Settings,
    Space,
    Visualizer,
    batch_channels,
    channel_activation,
    choose_space,
    layer_function,
    transforms,  # noqa: E402
)
from pipeline.errors import SpecError  # noqa: E402

_, tf = keras_and_tf()
L = keras.layers
SIZE, K = 32, 7
STEPS = 128
# Keras' conv on the same float32 arrays, in another batch composition: only summation order
# differs (|x| <= 1, 147 taps of |w| <= 1: rounding <= ~147 * 2**-24 * max|a| ~ 1e-5 relative).
SAME = {"rtol": 2e-5, "atol": 2e-5}
PLANTS = {"grating45": 0, "red_blob": 1, "vertical": 2, "horizontal": 3}
ANGLES = {0: 45.0, 2: 0.0, 3: 90.0}  # the wave vector's angle (row-axis over column-axis)


def kernels() -> np.ndarray:
    """(7, 7, 3, 4): the four planted detectors (zero-mean gratings; a red-centre blob)."""
    i, j = np.mgrid[0:K, 0:K].astype(np.float64)
    out = np.zeros((K, K, 3, 4))

    def grating(phase: np.ndarray) -> np.ndarray:
        g = np.cos(2 * np.pi * phase)
        return (g - g.mean()) / 3

    out[..., 0] = grating((i + j) / math.sqrt(2) / 4.0)[..., None]  # period 4 along (1, 1)
    blob = np.exp(-((i - 3) ** 2 + (j - 3) ** 2) / (2 * 1.5**2))
    out[..., 0, 1], out[..., 1, 1], out[..., 2, 1] = blob, -blob / 2, -blob / 2
    out[..., 2] = grating(j / 4.0)[..., None]  # vertical stripes: wave along columns
    out[..., 3] = grating(i / 5.0)[..., None]  # horizontal stripes: wave along rows
    return out.astype(np.float32)


def planted_model():
    """Input (32, 32, 3) -> Conv2D "plant" (hand-set, no bias) -> ReLU "relu" -> Conv2D -> GAP."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    conv = L.Conv2D(4, K, use_bias=False, name="plant")
    x = L.ReLU(name="relu")(conv(inputs))
    x = L.Conv2D(2, 3, name="head", kernel_initializer=keras.initializers.GlorotUniform(1))(x)
    model = keras.Model(inputs, L.GlobalAveragePooling2D(name="gap")(x), name="planted")
    conv.set_weights([kernels()])
    return model


def info_of(model, name: str):
    return next(i for i in layer_infos(model) if i.name == name)


def keras_activation(model, layer: str, x: np.ndarray, channels) -> np.ndarray:
    """The channel activations Keras itself computes (a sub-model over the layer's output)."""
    out = keras.Model(model.input, model.get_layer(layer).output)(x).numpy()
    return np.array([out[r, ..., c].mean() for r, c in enumerate(channels)], np.float32)


def random_patterns(n: int = 64, seed: int = 1) -> np.ndarray:
    """n uniform images in [0, 1] and n smooth ones (blurred noise), the baseline to beat."""
    rng = np.random.default_rng(seed)
    flat = rng.uniform(0, 1, (n, SIZE, SIZE, 3))
    blurred = rng.normal(0, 1, (n, SIZE, SIZE, 3))
    for axis in (1, 2):
        blurred = sum(np.roll(blurred, s, axis) for s in range(-2, 3)) / 5
    smooth = 1 / (1 + np.exp(-3 * blurred))
    return np.concatenate([flat, smooth]).astype(np.float32)


def wave_angle(image: np.ndarray, fmin: float = 0.1) -> float:
    """Dominant angle in [0, 180) of the wave vectors (row frequency over column frequency) in
    the mean-centred grey image's 2-D FFT power: the power-weighted mean of the doubled angle
    over frequencies >= ``fmin`` cycles/pixel (waves a 7-pixel filter resolves; the slow
    undulations the 1/f parameterization starts with and the unconstrained borders carry no
    orientation of the plant)."""
    grey = image.mean(axis=-1)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.fft.fftfreq(grey.shape[0])[:, None]
    fx = np.fft.fftfreq(grey.shape[1])[None, :]
    theta = np.arctan2(fy, fx)
    weight = power * (np.hypot(fx, fy) >= fmin)
    doubled = math.atan2((weight * np.sin(2 * theta)).sum(), (weight * np.cos(2 * theta)).sum())
    return math.degrees(doubled / 2) % 180


def angle_gap(a: float, b: float) -> float:
    d = abs(a - b) % 180
    return min(d, 180 - d)


def best_match(image: np.ndarray, kernel: np.ndarray) -> float:
    """Max over positions of the cosine between the mean-centred 7x7x3 patch and filter."""
    k = (kernel - kernel.mean()).ravel()
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape, axis=(0, 1, 2))
    patches = windows.reshape(-1, k.size)
    patches = patches - patches.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(patches, axis=1) * np.linalg.norm(k) + 1e-12
    return float(np.max(patches @ k / norms))


@pytest.fixture(scope="module")
def planted():
    model = planted_model()
    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0)
    vis = Visualizer(model, info_of(model, "relu"), space, Settings(steps=STEPS, seed=0))
    channels = [0, 1, 2, 3]
    images, activation = vis.run(channels)
    return model, vis, channels, images, activation


def test_planted_orientations(planted):
    _, _, channels, images, _ = planted
    for c, angle in ANGLES.items():
        got = wave_angle(images[channels.index(c)])
        assert angle_gap(got, angle) <= 10, (c, got, angle)


def test_red_blob_is_red(planted):
    _, _, channels, images, _ = planted
    image = images[channels.index(PLANTS["red_blob"])]
    red, green, blue = image.reshape(-1, 3).mean(axis=0)
    assert red - (green + blue) / 2 > 0.15, (red, green, blue)
    for c in ANGLES:  # the gratings are colourless: no channel dominates
        rgb = images[channels.index(c)].reshape(-1, 3).mean(axis=0)
        assert rgb.max() - rgb.min() < 0.15, (c, rgb)


def test_images_correlate_with_the_filter(planted):
    _, _, channels, images, _ = planted
    kernel = kernels()
    patterns = random_patterns(8)[:8]  # uniform noise (smooth noise can look like the blob)
    for row, c in enumerate(channels):
        match = best_match(images[row], kernel[..., c])
        baseline = max(best_match(x, kernel[..., c]) for x in patterns)
        assert match > 0.65 and match > baseline + 0.25, (c, match, baseline)


def test_activation_is_what_keras_computes_and_beats_patterns(planted):
    model, _, channels, images, activation = planted
    assert images.dtype == np.float32 and activation.dtype == np.float32
    assert images.shape == (4, SIZE, SIZE, 3) and activation.shape == (4,)
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(
        activation, keras_activation(model, "relu", images, channels), **SAME
    )
    patterns = random_patterns()
    out = keras.Model(model.input, model.get_layer("relu").output)(patterns).numpy()
    best = out.mean(axis=(1, 2)).max(axis=0)
    for row, c in enumerate(channels):
        assert activation[row] > 1.5 * best[c], (c, activation[row], best[c])


def test_rerun_is_bit_identical_and_batch_independent(planted):
    model, vis, channels, images, activation = planted
    again = Visualizer(model, info_of(model, "relu"), vis.space, Settings(steps=STEPS, seed=0))
    images2, activation2 = again.run(channels)
    assert np.array_equal(images, images2) and np.array_equal(activation, activation2)
    # Rows never mix; only a convolution's summation order may differ with the batch size
    # (float32 rounding, ~1e-7 relative per step), which 128 Adam steps of size <= lr cannot
    # grow beyond a small fraction of the [0, 1] range.
    alone, act_alone = vis.run([2])
    mixed, act_mixed = vis.run([3, 2, 2, 0, 1])
    for got, act in ((alone[0], act_alone[0]), (mixed[1], act_mixed[1]), (mixed[2], act_mixed[2])):
        np.testing.assert_allclose(got, images[2], atol=1e-3)
        np.testing.assert_allclose(act, activation[2], rtol=1e-3)
    other = Visualizer(model, info_of(model, "relu"), vis.space, Settings(steps=STEPS, seed=1))
    assert not np.allclose(other.run([2])[0][0], images[2], atol=0.05)  # the seed matters


def test_nested_and_intercepted_layers():
    cnn = builtin_model("cnn")
    info = info_of(cnn, "backbone/conv1")
    f = layer_function(cnn, info)
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    conv1 = cnn.get_layer("backbone").get_layer("conv1")
    got = tf.function(f)(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, conv1(x).numpy(), **SAME)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(channel_activation(f(x), tf.constant([0, 3, 5])))
        return tape.gradient(total, x)

    assert np.abs(grad(tf.constant(x)).numpy()).sum() > 0
    # a sub-model itself, whose input has the outer model's name ("image"): one rebuilt graph
    whole = layer_function(cnn, info_of(cnn, "backbone"))
    np.testing.assert_allclose(
        tf.function(whole)(tf.constant(x)).numpy(), cnn.get_layer("backbone")(x).numpy(), **SAME
    )
    space = choose_space((28, 28, 1), 0.0, 1.0)  # one colour: no colour matrix
    images, act = Visualizer(cnn, info, space, Settings(steps=16)).run([1, 4])
    out = conv1(images).numpy()
    np.testing.assert_allclose(act, [out[0, ..., 1].mean(), out[1, ..., 4].mean()], **SAME)

    class Block(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = L.Dense(
                6,
                activation="tanh",
                name="inner",
                kernel_initializer=keras.initializers.Orthogonal(4),
            )

        def call(self, x):
            return x[..., :6] + self.inner(x)

    inputs = keras.Input((5, 8), name="seq")
    block = Block(name="block")
    head = L.Dense(2, name="out", kernel_initializer=keras.initializers.GlorotUniform(5))
    model = keras.Model(inputs, head(block(inputs)), name="custom")
    info = info_of(model, "block/inner")
    space = choose_space((5, 8), -1.0, 1.0)
    images, act = Visualizer(model, info, space, Settings(steps=64)).run([0, 5])
    out = block.inner(images).numpy()
    np.testing.assert_allclose(act, [out[0, :, 0].mean(), out[1, :, 5].mean()], **SAME)
    assert act.min() > 0.9  # tanh units pushed towards their bound of 1


def test_input_space_on_the_seed_model():
    seed = builtin_model("seed")
    info = info_of(seed, "my_dense")
    space = choose_space((50, 50), 0.0, 1.0)
    assert space.kind == "input"
    channels = list(range(0, 50, 7))
    images, act = Visualizer(seed, info, space, Settings(steps=128)).run(channels)
    assert images.shape == (len(channels), 50, 50)
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(act, keras_activation(seed, "my_dense", images, channels), **SAME)
    patterns = np.random.default_rng(2).uniform(0, 1, (64, 50, 50)).astype(np.float32)
    best = keras.Model(seed.input, seed.get_layer("my_dense").output)(patterns).numpy()
    best = best.mean(axis=1).max(axis=0)
    assert np.all(act > best[channels]), (act, best[channels])


def test_pixels_space_through_preprocess():
    model = planted_model()

    def preprocess(pixels):
        return pixels / 127.5 - 1.0

    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0, preprocess=preprocess)
    assert (space.kind, space.low, space.high) == ("pixels", 0.0, 255.0)
    vis = Visualizer(model, info_of(model, "relu"), space, Settings(steps=STEPS))
    images, act = vis.run([1, 2])
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200.0
    np.testing.assert_allclose(
        act, keras_activation(model, "relu", preprocess(images), [1, 2]), **SAME
    )
    red = images[0].reshape(-1, 3).mean(axis=0)
    assert red[0] - red[1:].mean() > 0.15 * 255


def test_choose_space():
    assert choose_space((None, None, 3), 0, 1, size=(40, 24)) == Space("image", (40, 24, 3), 0, 1)
    assert choose_space((8, 8, 3), 0, 1, size=(8, 8)).shape == (8, 8, 3)
    assert choose_space((16,), -2, 3) == Space("input", (16,), -2.0, 3.0)
    assert choose_space((8, 8, 2), 0, 1).kind == "input"  # 2 colours: not an image
    with pytest.raises(SpecError, match="free height or width"):
        choose_space((None, None, 3), 0, 1)
    with pytest.raises(SpecError, match="differs from the model's fixed input size 8x8"):
        choose_space((8, 8, 3), 0, 1, size=(16, 16))
    with pytest.raises(SpecError, match="size applies to image inputs"):
        choose_space((50, 50), 0, 1, size=(50, 50))
    with pytest.raises(SpecError, match="not an image"):
        choose_space((50, 50), 0, 1, preprocess=lambda x: x)
    with pytest.raises(SpecError, match="free axis"):
        choose_space((None, 28), 0, 1)
    with pytest.raises(SpecError, match="low < high"):
        choose_space((8, 8, 3), 1, 1)


def test_batch_channels_and_errors(planted):
    model, vis, *_ = planted
    space = vis.space
    assert batch_channels(space, (26, 26, 4)) == 256  # tiny: the cap
    assert batch_channels(space, (26, 26, 4), budget_bytes=1) == 1
    big = Space("image", (224, 224, 3), 0, 1)
    per = 4 * (12 * 224 * 224 * 3 + 8 * 112 * 112 * 64)
    assert batch_channels(big, (112, 112, 64)) == (256 << 20) // per
    assert batch_channels(big, (None, None, 64)) <= batch_channels(big, (112, 112, 64))
    with pytest.raises(SpecError, match="channels 0..3"):
        vis.run([4])
    with pytest.raises(SpecError, match="steps"):
        Settings(steps=0)
    images, act = vis.run([])
    assert images.shape == (0, SIZE, SIZE, 3) and act.shape == (0,)


def test_free_size_image_model_at_a_non_square_size():
    """A fully convolutional model (free height and width) optimized at --size 24x40: the
    parameterization keeps rows as rows (a transposed layout could not give this shape)."""
    inputs = keras.Input((None, None, 3), name="image")
    conv = L.Conv2D(4, K, use_bias=False, name="plant")
    model = keras.Model(inputs, L.ReLU(name="relu")(conv(inputs)), name="free")
    conv.set_weights([kernels()])
    space = choose_space((None, None, 3), 0.0, 1.0, size=(24, 40))
    images, act = Visualizer(model, info_of(model, "relu"), space, Settings(steps=64)).run([2, 3])
    assert images.shape == (2, 24, 40, 3)
    np.testing.assert_allclose(act, keras_activation(model, "relu", images, [2, 3]), **SAME)
    assert angle_gap(wave_angle(images[0]), ANGLES[2]) <= 10
    assert angle_gap(wave_angle(images[1]), ANGLES[3]) <= 10


def test_transforms_move_rows_by_their_own_draws():
    """One batched projective transform: row 0 identity (draws at the middle), row 1 an integer
    shift (+1 row, -1 column; the vacated border reads the grey mid value), row 2 scale and
    rotation about the centre: a linear ramp f = x (column) then reads exactly
    cx + a (x - cx) + b (y - cy), a = cos(t)/s, b = sin(t)/s, away from the border."""
    space = Space("image", (9, 11, 1), 0.0, 2.0)
    assert transforms.jitter_of(space) == 1
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 2, (2, 9, 11, 1)).astype(np.float32)
    ramp = np.broadcast_to(np.arange(11, dtype=np.float32)[None, :, None], (9, 11, 1))
    images = np.stack([noise[0], noise[1], ramp])
    draws = np.array([[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    out = transforms.transform(tf.constant(images), tf.constant(draws, tf.float32), space)
    out = out.numpy()
    np.testing.assert_allclose(out[0], noise[0], atol=1e-6)
    np.testing.assert_allclose(out[1][1:, :-1], noise[1][:-1, 1:], atol=1e-6)
    assert np.all(out[1][0] == 1.0) and np.all(out[1][:, -1] == 1.0)
    s, t = 1.1, math.radians(10.0)
    a, b = math.cos(t) / s, math.sin(t) / s
    y, x = np.mgrid[0:9, 0:11]
    expected = 5.0 + a * (x - 5.0) + b * (y - 4.0)
    np.testing.assert_allclose(out[2][2:-2, 2:-2, 0], expected[2:-2, 2:-2], atol=1e-4)
