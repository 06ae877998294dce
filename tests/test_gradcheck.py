"""The gradient checker and the layer harness must catch wrong layers, not just pass.

Known-good functions give small errors and deliberately broken layers and losses
give large ones, so a passing gradient test elsewhere means something.
"""

import numpy as np
import pytest
from layer_harness import check_layer_contract

from tinynet.gradcheck import check_layer, check_loss, numerical_gradient, rel_error
from tinynet.layers import Dense, ReLU, Tanh
from tinynet.losses import SoftmaxCrossEntropy


def test_rel_error_per_array_is_scale_relative():
    a = np.array([1.0, -2.0, 0.0])
    assert rel_error(a, a, per="array") == 0.0
    assert rel_error(a, a * 2, per="array") == pytest.approx(0.5)
    b = (a + [0, 0, 1e-3]) * 1e-6
    assert rel_error(a * 1e-6, b, per="array") == pytest.approx(5e-4)
    assert rel_error(np.zeros(3), np.zeros(3), per="array") == 0.0
    with pytest.raises(ValueError, match="per"):
        rel_error(a, a, per="row")


def test_rel_error():
    a = np.array([1.0, -2.0, 0.0])
    assert rel_error(a, a) == 0.0
    np.testing.assert_allclose(rel_error(a, np.array([1.1, -2.0, 0.0])), 0.1 / 2.1)
    # Entries that are ~0 in both are compared against the floor, not each other.
    assert rel_error(np.array([1e-12]), np.array([2e-12])) < 1e-3
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_of_a_known_function_and_restores_x():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x**3)), x)
    assert rel_error(grad, 3 * before**2) < 1e-7
    np.testing.assert_array_equal(x, before)
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, x.astype(np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: 0.0, np.zeros((3, 4)).T)


def _dense64():
    layer = Dense(3, bias_initializer="he_uniform")
    layer.build((4,), np.random.default_rng(0), np.float64)
    return layer


def test_check_layer_passes_a_correct_layer_and_needs_float64():
    x = np.random.default_rng(1).standard_normal((2, 4))
    errors = check_layer(_dense64(), x)
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-7
    with pytest.raises(TypeError, match="float64"):
        check_layer(_dense64(), x.astype(np.float32))


@pytest.mark.parametrize("broken", ["x", "W", "b"])
def test_check_layer_catches_each_wrong_gradient(broken):
    layer = _dense64()
    backward = layer.backward

    def wrong_backward(dout):
        dx = backward(dout)
        if broken == "x":
            return 1.01 * dx
        layer.grads[broken] *= 1.01
        return dx

    layer.backward = wrong_backward
    errors = check_layer(layer, np.random.default_rng(2).standard_normal((2, 4)))
    assert errors[broken] > 1e-3
    assert all(e < 1e-7 for k, e in errors.items() if k != broken)


def test_check_loss_catches_a_wrong_gradient():
    z = np.random.default_rng(3).standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    loss = SoftmaxCrossEntropy()
    assert check_loss(loss, z, labels) < 1e-6

    def unnormalised(pred, target):  # forgets the 1/N
        value, grad = loss(pred, target)
        return value, grad * len(pred)

    assert check_loss(unnormalised, z, labels) > 0.5


# ---- the harness rejects layers that break the contract in each way it checks.


class _Upcasting(Tanh):
    def _run(self, x, training):
        return super()._run(x.astype(np.float64), training)


class _WrongGradient(Tanh):
    def backward(self, dout):
        return 1.001 * super().backward(dout)


class _KeepsCache(Tanh):
    def _run(self, x, training):
        return super()._run(x, True)


class _Unregistered(ReLU):
    pass


@pytest.mark.parametrize(
    ("cls", "error", "message"),
    [
        (_Upcasting, AssertionError, "float32 input gave float64"),
        (_WrongGradient, AssertionError, "gradient relative errors"),
        (_KeepsCache, AssertionError, "kept a cache"),
        (_Unregistered, TypeError, "not a registered"),
    ],
)
def test_harness_rejects_contract_breakers(cls, error, message):
    with pytest.raises(error, match=message):
        check_layer_contract(cls, (3,))
