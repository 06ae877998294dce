"""Flatten."""

import numpy as np
import pytest
from layer_harness import check_layer_contract

from tinynet.layers import Dense, Flatten


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (4, 4, 1)])
def test_contract(shape):
    check_layer_contract(Flatten, shape)


def test_flattens_row_major_and_restores_the_gradient_shape():
    layer = Flatten()
    assert layer.build((28, 28, 1)) == (784,)
    x = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, x.reshape(2, -1))
    assert y[0, 28] == x[0, 1, 0, 0]  # NHWC, last axis fastest, as in Keras
    dx = layer.backward(np.arange(2 * 784, dtype=np.float32).reshape(2, 784))
    assert dx.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(dx.reshape(2, -1), np.arange(2 * 784).reshape(2, 784))


def test_flatten_makes_images_fit_dense():
    out = Flatten().build((3, 3, 2))
    assert Dense(4).build(out) == (4,)
