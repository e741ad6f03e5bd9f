"""SmoothGrad attribution against what is known: a planted detector's feature pasted at a known
place is where the map peaks; for a linear unit SmoothGrad is exactly the gradient; for a ReLU
unit it is Phi(z) times the weights (z = pre-activation / (sigma |w|)); activations and
gradients are Keras' own (a GradientTape over the Keras model); chunking and batch-mates do not
change a channel's maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from externals import need_keras

keras = need_keras()

from test_visualize_core import SIZE, info_of, kernels, planted_model  # noqa: E402

from pipeline.capturing.framework import keras_and_tf  # noqa: E402
from pipeline.capturing.visualize import Attributor, choose_space  # noqa: E402
from pipeline.errors import SpecError  # noqa: E402

_, tf = keras_and_tf()
L = keras.layers
SAME = {"rtol": 2e-5, "atol": 2e-6}
PLACES = [(6, 20), (22, 9)]  # centres of the pasted feature, per pattern slot


def pasted(channels, places=PLACES, seed: int = 3) -> np.ndarray:
    """(n, K, 32, 32, 3): faint noise around grey with channel c's filter, drawn as an image
    (0.5 + 0.45 * w / max|w|), pasted centred at each of ``places``."""
    rng = np.random.default_rng(seed)
    out = 0.5 + 0.03 * rng.normal(size=(len(channels), len(places), SIZE, SIZE, 3))
    for i, c in enumerate(channels):
        w = kernels()[..., c]
        for k, (y, x) in enumerate(places):
            out[i, k, y - 3 : y + 4, x - 3 : x + 4] = 0.5 + 0.45 * w / np.abs(w).max()
    return out.astype(np.float32)


def keras_gradient(model, layer: str, x: np.ndarray, channel: int, preprocess=None):
    """d mean(output[..., channel]) / dx and the activation, by Keras under a GradientTape."""
    sub = keras.Model(model.input, model.get_layer(layer).output)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = sub(preprocess(x) if preprocess else x)[..., channel]
        act = tf.reduce_mean(out, axis=list(range(1, out.shape.rank)))
        total = tf.reduce_sum(act)
    return tape.gradient(total, x).numpy(), act.numpy()


@pytest.fixture(scope="module")
def model():
    return planted_model()


def test_smoothgrad_peaks_where_the_feature_was_pasted(model):
    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0)
    channels = [0, 1, 2, 3]
    inputs = pasted(channels)
    maps, clean = Attributor(model, info_of(model, "relu"), space, samples=32).run(channels, inputs)
    assert maps.shape == inputs.shape and maps.dtype == np.float32
    for i, c in enumerate(channels):
        _, act = keras_gradient(model, "relu", inputs[i], c)
        np.testing.assert_allclose(clean[i], act, **SAME)
        for k, (y, x) in enumerate(PLACES):
            mask = np.abs(maps[i, k]).sum(axis=-1)
            py, px = np.unravel_index(np.argmax(mask), mask.shape)
            assert max(abs(py - y), abs(px - x)) <= 4, (c, k, (py, px), (y, x))
            # The 13x13 window around the feature holds 1.5x more per pixel than the rest
            # (measured 1.8x-5x; outside it |map| is Monte Carlo noise of 32 samples).
            window = np.zeros(mask.shape, bool)
            window[y - 6 : y + 7, x - 6 : x + 7] = True
            assert mask[window].mean() > 1.5 * mask[~window].mean(), (c, k)


def test_linear_unit_smoothgrad_is_its_gradient(model):
    """The "plant" conv is linear (no bias, no activation): every noisy copy has the same
    gradient, so SmoothGrad equals Keras' gradient whatever the noise."""
    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0)
    inputs = pasted([0, 1])
    maps, clean = Attributor(model, info_of(model, "plant"), space, samples=4, noise=0.5).run(
        [0, 1], inputs
    )
    for i in range(2):
        grad, act = keras_gradient(model, "plant", inputs[i], i)
        np.testing.assert_allclose(maps[i], grad, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(clean[i], act, **SAME)


def test_relu_unit_smoothgrad_has_its_closed_form():
    """A Dense ReLU unit a(x) = relu(w.x + b) on inputs in [-1, 3]: with noise N(0, sigma^2 I),
    sigma = 0.2 * (3 - -1), E[grad] = Phi((w.x + b) / (sigma |w|)) w. Each component is |w_i|
    times a mean of `samples` Bernoulli draws: its Monte Carlo std is
    |w_i| sqrt(p (1 - p) / samples); checked within 5 of those (+ float rounding)."""
    inputs = keras.Input((16,), name="vec")
    dense = L.Dense(3, activation="relu", name="unit")
    model = keras.Model(inputs, dense(inputs))
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 3)).astype(np.float32)
    b = np.array([0.1, -0.2, 0.3], np.float32)
    dense.set_weights([w, b])
    space = choose_space((16,), -1.0, 3.0)
    sigma = 0.2 * 4.0
    samples, channel = 2048, 1
    wc = w[:, channel]
    z_wanted = np.array([-1.0, 0.0, 0.7, 2.0])
    base = rng.uniform(0, 2, 16)
    shift = (z_wanted * sigma * np.linalg.norm(wc) - (base @ wc + b[channel])) / (wc @ wc)
    x = (base[None] + shift[:, None] * wc[None]).astype(np.float32)  # (4, 16) at those z
    maps, clean = Attributor(model, info_of(model, "unit"), space, samples=samples, noise=0.2).run(
        [channel], x[None]
    )
    p = np.array([0.5 * (1 + math.erf(z / math.sqrt(2))) for z in z_wanted])
    expected = p[:, None] * wc[None]
    tol = 5 * np.abs(wc)[None] * np.sqrt(p * (1 - p) / samples)[:, None] + 1e-5
    assert np.all(np.abs(maps[0] - expected) <= tol), np.abs(maps[0] - expected) / tol
    np.testing.assert_allclose(clean[0], np.maximum(x @ wc + b[channel], 0), **SAME)


def test_batch_mates_chunks_and_reruns_do_not_change_maps(model):
    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0)
    info = info_of(model, "relu")
    inputs = pasted([0, 1, 2])
    full, clean = Attributor(model, info, space, samples=8).run([0, 1, 2], inputs)
    again, clean2 = Attributor(model, info, space, samples=8).run([0, 1, 2], inputs)
    assert np.array_equal(full, again) and np.array_equal(clean, clean2)
    alone, _ = Attributor(model, info, space, samples=8).run([1], inputs[1:2])
    np.testing.assert_allclose(alone[0], full[1], rtol=1e-5, atol=1e-7)
    # One noisy copy per pass (budget of 1 byte): the sum over samples is accumulated in
    # another order, so float32 rounding (8 terms, ~1e-7 relative each) is all that may differ.
    tiny, tiny_clean = Attributor(model, info, space, samples=8, budget_bytes=1).run(
        [0, 1, 2], inputs
    )
    np.testing.assert_allclose(tiny, full, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(tiny_clean, clean, **SAME)
    # Slots draw their own noise: the same pattern in two slots gets two different maps.
    twice = np.repeat(inputs[:1, :1], 2, axis=1)
    maps, _ = Attributor(model, info, space, samples=8).run([0], twice)
    assert not np.allclose(maps[0, 0], maps[0, 1], rtol=1e-3, atol=1e-6)
    other, _ = Attributor(model, info, space, samples=8, seed=1).run([0], inputs[:1])
    assert not np.allclose(other[0], full[0], rtol=1e-3, atol=1e-6)  # the seed matters


def test_pixels_space_maps_are_pixel_gradients(model):
    def preprocess(pixels):
        return pixels / 127.5 - 1.0

    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0, preprocess=preprocess)
    pixels = pasted([1]) * 255.0
    maps, clean = Attributor(model, info_of(model, "relu"), space, noise=0.0, samples=2).run(
        [1], pixels
    )
    grad, act = keras_gradient(model, "relu", pixels[0], 1, preprocess)
    np.testing.assert_allclose(maps[0], grad, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(clean[0], act, **SAME)
    assert np.abs(maps).max() < 0.1  # per pixel unit: 1/127.5 of the input-space gradient


def test_attribution_refusals(model):
    space = choose_space((SIZE, SIZE, 3), 0.0, 1.0)
    attributor = Attributor(model, info_of(model, "relu"), space, samples=2)
    with pytest.raises(SpecError, match=r"expected shape \(1, K, 32, 32, 3\)"):
        attributor.run([0], np.zeros((1, 2, 28, 28, 3), np.float32))
    with pytest.raises(SpecError, match="channels 0..3"):
        attributor.run([9], np.zeros((1, 2, SIZE, SIZE, 3), np.float32))
    with pytest.raises(SpecError, match="samples"):
        Attributor(model, info_of(model, "relu"), space, samples=0)
    maps, clean = attributor.run([0], np.zeros((1, 0, SIZE, SIZE, 3), np.float32))
    assert maps.shape == (1, 0, SIZE, SIZE, 3) and clean.shape == (1, 0)
