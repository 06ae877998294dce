"""BatchNorm and Rescaling."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import GRADCHECK_SETTINGS, assert_gradients, check_layer_contract

from tinynet.gradcheck import check_layer
from tinynet.layers import BatchNorm, Rescaling


@pytest.mark.parametrize("shape", [(4,), (3, 3, 2)])
def test_batchnorm_contract(shape):
    check_layer_contract(lambda: BatchNorm(momentum=0.9), shape, batch=4)


@GRADCHECK_SETTINGS
@given(
    spatial=st.sampled_from([(), (2, 2), (3, 1)]),
    channels=st.integers(1, 4),
    batch=st.integers(4, 6),
    seed=st.integers(0, 2**16),
)
def test_batchnorm_gradients_over_shapes(spatial, channels, batch, seed):
    shape = (*spatial, channels)
    # With only 4 values per channel a small batch variance curves the function
    # sharply, so a smaller step than the harness default is the accurate one.
    assert_gradients(BatchNorm, shape, batch=batch, seed=seed, eps=1e-5)
    # gamma = 1, beta = 0 as built would hide a missing gamma in dx: check with
    # random ones as well.
    layer = BatchNorm()
    rng = np.random.default_rng(seed)
    layer.build(shape, rng, np.float64)
    layer.params["gamma"][:] = rng.uniform(0.5, 2.0, channels) * rng.choice(
        [-1.0, 1.0], channels
    )
    layer.params["beta"][:] = rng.standard_normal(channels)
    x = rng.standard_normal((batch, *shape)) * 3.0 + 1.0
    errors = check_layer(layer, x, eps=1e-5, seed=seed)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-6, errors


def _built_bn(shape, dtype=np.float64, **kwargs):
    layer = BatchNorm(**kwargs)
    layer.build(shape, np.random.default_rng(0), dtype)
    return layer


@pytest.mark.parametrize("shape", [(5,), (4, 3, 5)])
def test_training_normalises_each_channel_over_all_other_axes(shape):
    layer = _built_bn(shape)
    rng = np.random.default_rng(1)
    x = 3.0 + 2.0 * rng.standard_normal((8, *shape)) * np.arange(1, 6)
    y = layer.forward(x, training=True)
    axes = tuple(range(y.ndim - 1))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    var = x.var(axis=axes)
    np.testing.assert_allclose(y.var(axis=axes), var / (var + 1e-3), rtol=1e-10)


def test_moving_statistics_follow_the_keras_rule():
    layer = _built_bn((3,), momentum=0.9)
    held = layer.buffers["moving_mean"]
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((6, 3)) * 2 + 5 for _ in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        layer.forward(x, training=True)
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0)  # biased, as Keras
    np.testing.assert_allclose(layer.buffers["moving_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["moving_var"], var, rtol=1e-12)
    assert layer.buffers["moving_mean"] is held  # updated in place


def test_inference_uses_moving_statistics():
    layer = _built_bn((2, 2, 3))
    rng = np.random.default_rng(3)
    layer.buffers["moving_mean"][:] = [1.0, -2.0, 0.5]
    layer.buffers["moving_var"][:] = [4.0, 0.25, 1.0]
    layer.params["gamma"][:] = [2.0, 1.0, -1.0]
    layer.params["beta"][:] = [0.0, 1.0, 3.0]
    x = rng.standard_normal((2, 2, 2, 3))
    expected = (x - [1.0, -2.0, 0.5]) / np.sqrt([4.0, 0.25, 1.0] + np.float64(1e-3))
    expected = expected * [2.0, 1.0, -1.0] + [0.0, 1.0, 3.0]
    np.testing.assert_allclose(layer.forward(x, training=False), expected, rtol=1e-12)


def test_momentum_zero_keeps_the_last_batch_and_float32_stays_float32():
    layer = _built_bn((3,), dtype=np.float32, momentum=0.0)
    x = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer.buffers["moving_var"].dtype == np.float32
    np.testing.assert_allclose(layer.buffers["moving_mean"], x.mean(axis=0), rtol=1e-6)
    # With the last batch's statistics, inference reproduces the training output.
    np.testing.assert_allclose(layer.forward(x), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [{"momentum": 1.5}, {"momentum": -0.1}, {"epsilon": 0.0}, {"momentum": "0.9"}],
)
def test_batchnorm_validates(kwargs):
    error = TypeError if kwargs == {"momentum": "0.9"} else ValueError
    with pytest.raises(error, match="BatchNorm"):
        BatchNorm(**kwargs)


def test_batchnorm_config():
    assert BatchNorm(0.9, 1e-5, name="bn").get_config() == {
        "momentum": 0.9,
        "epsilon": 1e-5,
        "name": "bn",
    }
    assert BatchNorm.has_training_mode


@pytest.mark.parametrize("shape", [(4,), (3, 3, 1)])
def test_rescaling_contract(shape):
    check_layer_contract(lambda: Rescaling(0.5, -1.0), shape)


def test_rescaling_values_and_integer_inputs():
    layer = Rescaling(1 / 255, -0.5)
    layer.build((2, 2, 1), dtype=np.float32)
    x = np.array([0, 51, 204, 255], dtype=np.uint8).reshape(1, 2, 2, 1)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.ravel(), [-0.5, -0.3, 0.3, 0.5], rtol=1e-6)
    layer.forward(x.astype(np.float32), training=True)
    np.testing.assert_allclose(layer.backward(np.ones((1, 2, 2, 1))), 1 / 255)
    for bad, error in (
        ({"scale": float("inf")}, ValueError),
        ({"offset": "1"}, TypeError),
    ):
        with pytest.raises(error, match="Rescaling"):
            Rescaling(**bad)
