"""Dense: the shared contract plus owned activations and input-shape errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import GRADCHECK_SETTINGS, assert_gradients, check_layer_contract

from tinynet import initializers
from tinynet.layers import Dense, LeakyReLU, Softmax, layer_from_config
from tinynet.layers.activations import softmax


@pytest.mark.parametrize(
    "make",
    [
        lambda: Dense(4),
        lambda: Dense(3, use_bias=False, kernel_initializer="he_normal"),
        lambda: Dense(5, activation="tanh", bias_initializer="glorot_uniform"),
        lambda: Dense(4, activation="softmax", bias_initializer="he_uniform"),
        lambda: Dense(3, activation=LeakyReLU(0.1), name="hidden"),
        # Fixed seed: no pre-activation lands within the step of ReLU's kink.
        lambda: Dense(4, activation="relu", bias_initializer="he_uniform"),
    ],
)
def test_contract(make):
    check_layer_contract(make, (6,))


@GRADCHECK_SETTINGS
@given(
    fan_in=st.integers(1, 6),
    units=st.integers(1, 5),
    batch=st.integers(1, 4),
    activation=st.sampled_from([None, "sigmoid", "softmax", "tanh"]),
    seed=st.integers(0, 2**16),
)
def test_gradients_over_shapes(fan_in, units, batch, activation, seed):
    # A random bias keeps the check from depending on b = 0.
    def make():
        return Dense(units, activation, bias_initializer="he_uniform")

    assert_gradients(make, (fan_in,), batch=batch, seed=seed)


def test_forward_is_affine_map_then_activation():
    layer = Dense(3, activation="softmax", bias_initializer="he_uniform")
    layer.build((4,), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((2, 4))
    z = x @ layer.params["W"] + layer.params["b"]
    np.testing.assert_allclose(layer.forward(x), softmax(z), rtol=1e-12)
    assert layer.params["W"].shape == (4, 3) and layer.params["b"].shape == (3,)
    assert layer.count_params() == 15


def test_no_bias_means_no_b():
    layer = Dense(3, use_bias=False)
    layer.build((4,), np.random.default_rng(0))
    assert set(layer.params) == {"W"} and set(layer.grads) == {"W"}


def test_build_rejects_images_and_suggests_flatten():
    with pytest.raises(ValueError, match="Flatten") as err:
        Dense(10, name="out").build((28, 28))
    assert "Dense 'out'" in str(err.value) and "28, 28" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"units": 0}, ValueError),
        ({"units": 2.5}, TypeError),
        ({"units": True}, TypeError),
        ({"units": 3, "activation": "swish"}, ValueError),
        ({"units": 3, "kernel_initializer": "orthogonal"}, ValueError),
        ({"units": 3, "use_bias": 1}, TypeError),
    ],
)
def test_constructor_validates(kwargs, error):
    with pytest.raises(error):
        Dense(**kwargs)


def test_backward_fills_grads_in_place():
    layer = Dense(2)
    layer.build((3,), np.random.default_rng(0), np.float64)
    held_w, held_b = layer.grads["W"], layer.grads["b"]
    x = np.random.default_rng(1).standard_normal((4, 3))
    layer.forward(x, training=True)
    dout = np.ones((4, 2))
    layer.backward(dout)
    assert layer.grads["W"] is held_w and layer.grads["b"] is held_b
    np.testing.assert_allclose(held_w, x.T @ dout)
    np.testing.assert_allclose(held_b, [4.0, 4.0])
    with pytest.raises(ValueError, match="Dense"):
        layer.backward(np.ones((4, 3)))


def test_split_activation_keeps_the_function_and_updates_config():
    rng = np.random.default_rng(0)
    layer = Dense(4, activation="softmax", name="out")
    layer.build((5,), np.random.default_rng(1), np.float32)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    y = layer.forward(x)
    assert layer.get_config()["activation"] == "softmax"

    act = layer.split_activation()
    assert isinstance(act, Softmax) and layer.activation is None
    assert act.built and act.input_shape == (4,) and act.dtype == np.float32
    assert layer.get_config()["activation"] is None
    assert layer.split_activation() is None
    # Dense then Softmax computes what the fused layer did, forward and backward.
    z = layer.forward(x, training=True)
    np.testing.assert_array_equal(act.forward(z, training=True), y)
    dout = rng.standard_normal((3, 4)).astype(np.float32)
    dx = layer.backward(act.backward(dout))
    fused = Dense(4, activation="softmax")
    fused.build((5,), np.random.default_rng(1), np.float32)
    fused.forward(x, training=True)
    np.testing.assert_allclose(fused.backward(dout), dx, rtol=1e-6)
    np.testing.assert_allclose(fused.grads["W"], layer.grads["W"], rtol=1e-6)


def test_owned_activation_follows_astype():
    layer = Dense(2, activation="tanh")
    layer.build((3,), np.random.default_rng(0), np.float32)
    layer.astype(np.float64)
    assert layer.activation.dtype == np.float64
    assert layer.forward(np.ones((1, 3))).dtype == np.float64


def test_config_names_activation_and_initializers():
    layer = Dense(3, activation=LeakyReLU(0.1), kernel_initializer="he_uniform")
    config = layer.get_config()
    assert config["kernel_initializer"] == "he_uniform"
    assert config["activation"]["config"]["alpha"] == 0.1
    clone = layer_from_config({"class_name": "Dense", "config": config})
    assert clone.activation.alpha == 0.1
    assert clone.kernel_initializer is initializers.he_uniform


def test_custom_initializer_trains_but_cannot_be_saved():
    def init(shape, rng, dtype=np.float32):
        return np.full(shape, 0.5, dtype=dtype)

    layer = Dense(2, kernel_initializer=init)
    layer.build((3,), np.random.default_rng(0))
    np.testing.assert_array_equal(layer.params["W"], 0.5)
    with pytest.raises(ValueError, match="not registered"):
        layer.get_config()
