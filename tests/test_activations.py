"""Activation layers, softmax/log_softmax/sigmoid functions and the registry."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import (
    GRADCHECK_SETTINGS,
    assert_gradients,
    away_from_zero,
    check_layer_contract,
)

from tinynet.layers import LAYERS, layer_from_config, layer_to_config
from tinynet.layers import activations as act
from tinynet.layers.activations import (
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    log_softmax,
    sigmoid,
    softmax,
)

# (factory, input maker): ReLU-like layers need inputs away from their kink.
CASES = {
    "relu": (ReLU, away_from_zero()),
    "leaky_relu": (lambda: LeakyReLU(alpha=0.1), away_from_zero()),
    "sigmoid": (Sigmoid, None),
    "tanh": (Tanh, None),
    "softmax": (Softmax, None),
}


@pytest.mark.parametrize("key", sorted(CASES))
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2)])
def test_layer_contract(key, shape):
    make, make_input = CASES[key]
    kwargs = {"make_input": make_input} if make_input else {}
    check_layer_contract(make, shape, **kwargs)


@pytest.mark.parametrize("key", sorted(CASES))
@GRADCHECK_SETTINGS
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_gradients_over_shapes(key, shape, batch, seed):
    make, make_input = CASES[key]
    kwargs = {"make_input": make_input} if make_input else {}
    assert_gradients(make, shape, batch=batch, seed=seed, **kwargs)


def _run(layer, x):
    layer.build(x.shape[1:], np.random.default_rng(0), x.dtype)
    return layer.forward(x, training=True)


def test_relu_and_leaky_relu_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_array_equal(_run(ReLU(), x), [[0, 0, 0, 0.5, 3.0]])
    np.testing.assert_allclose(_run(LeakyReLU(0.1), x), [[-0.2, -0.05, 0, 0.5, 3]])
    leaky = LeakyReLU(0.1)
    _run(leaky, x)
    np.testing.assert_allclose(leaky.backward(np.ones_like(x)), [[0.1, 0.1, 0.1, 1, 1]])


def test_leaky_relu_slopes_follow_keras_layer_and_function():
    """Keras: the ``LeakyReLU`` layer defaults to 0.3, ``activation="leaky_relu"``
    (the function) to 0.2; each survives a config round trip."""
    from tinynet.layers import Dense, activations

    assert LeakyReLU().alpha == 0.3
    assert activations.get("leaky_relu").alpha == 0.2
    for activation, alpha in (("leaky_relu", 0.2), (LeakyReLU(), 0.3)):
        layer = Dense(2, activation=activation)
        assert layer.activation.alpha == alpha
        config = layer.get_config()
        assert Dense(**config).activation.alpha == alpha
    assert Dense(2, activation="leaky_relu").get_config()["activation"] == "leaky_relu"
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="LeakyReLU"):
            LeakyReLU(bad)


def test_sigmoid_is_stable_and_exact():
    z = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(z)
    np.testing.assert_allclose(s[1:-1], 1 / (1 + np.exp(-z[1:-1])), rtol=1e-15)
    assert s[0] == 0.0 and s[-1] == 1.0
    # Tiny probabilities keep their relative precision rather than rounding to 0.
    np.testing.assert_allclose(sigmoid(np.array([-700.0])), np.exp(-700.0), rtol=1e-12)
    assert sigmoid(z.astype(np.float32)).dtype == np.float32


def test_softmax_rows_sum_to_one_and_are_stable():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 3, 6)) * 30
    z[0, 0] += 1e4  # would overflow exp without the max shift
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = _run(Softmax(), z)
        logp = log_softmax(z)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(p >= 0)
    np.testing.assert_allclose(np.exp(logp), p, rtol=1e-10, atol=1e-300)
    assert np.all(np.isfinite(logp))
    # Shift invariance along the softmax axis.
    np.testing.assert_allclose(softmax(z + 7.0), softmax(z), rtol=1e-12)
    np.testing.assert_allclose(
        softmax(z, axis=0).sum(axis=0), np.ones((3, 6)), rtol=1e-12
    )


def test_log_softmax_matches_naive_formula_on_moderate_inputs():
    z = np.random.default_rng(1).standard_normal((5, 7))
    naive = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_softmax(z), naive, rtol=1e-12)


def test_softmax_backward_is_the_jacobian_vector_product():
    rng = np.random.default_rng(2)
    z, dout = rng.standard_normal((1, 4)), rng.standard_normal((1, 4))
    layer = Softmax()
    p = _run(layer, z)[0]
    jacobian = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(layer.backward(dout)[0], jacobian @ dout[0], rtol=1e-12)


def test_get_and_serialize():
    assert act.get(None) is None and act.get("linear") is None
    for key, cls in act.ACTIVATIONS.items():
        layer = act.get(key)
        assert type(layer) is cls
        assert act.serialize(layer) == key
        assert cls.__name__ in LAYERS
    custom = LeakyReLU(0.05)
    copy = act.get(custom)
    assert copy is not custom and copy.alpha == 0.05
    spec = act.serialize(copy)
    assert spec == {"class_name": "LeakyReLU", "config": {"alpha": 0.05, "name": None}}
    assert act.get(spec).alpha == 0.05
    with pytest.raises(ValueError, match="'relu'") as err:
        act.get("gelu")
    assert "gelu" in str(err.value)
    with pytest.raises(TypeError):
        act.get(3)


def test_configs_round_trip():
    for layer in (ReLU(), LeakyReLU(0.2, name="lrelu"), Sigmoid(), Tanh(), Softmax()):
        clone = layer_from_config(layer_to_config(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()
