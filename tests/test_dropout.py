"""Dropout: contract, mask statistics and scaling, inference identity, seeding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import GRADCHECK_SETTINGS, assert_gradients, check_layer_contract

from tinynet.kernels import reference
from tinynet.layers import Dropout


@pytest.mark.parametrize("rate", [0.0, 0.5])
@pytest.mark.parametrize("shape", [(6,), (3, 4, 2)])
def test_contract(rate, shape):
    check_layer_contract(lambda: Dropout(rate), shape)


@GRADCHECK_SETTINGS
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    rate=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**16),
)
def test_gradients_over_shapes(shape, rate, seed):
    assert_gradients(lambda: Dropout(rate), shape, seed=seed)


def _built(rate, shape, seed=0, dtype=np.float32):
    layer = Dropout(rate)
    layer.build(shape, np.random.default_rng(seed), dtype)
    return layer


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.75])
def test_drop_fraction_and_scaling(rate):
    layer = _built(rate, (100, 100))
    x = np.ones((10, 100, 100), dtype=np.float32)
    y = layer.forward(x, training=True)
    dropped = y == 0
    # 10^5 Bernoulli draws: the fraction is within ~0.0015 (1 sd) of the rate.
    assert abs(dropped.mean() - rate) < 0.01
    np.testing.assert_allclose(y[~dropped], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation
    assert y.dtype == np.float32
    dx = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx == 0, dropped)
    np.testing.assert_allclose(dx[~dropped], 2 / (1 - rate), rtol=1e-6)


def test_an_entry_is_dropped_when_its_bits_are_below_rate_times_2_to_the_32():
    """The documented rule, with the key drawn from the layer's generator."""
    rate = 0.3
    layer = _built(rate, (7,), seed=5)
    y = layer.forward(np.ones((3, 7), np.float32), training=True)
    key = np.random.default_rng(5).integers(2**64, dtype=np.uint64)
    dropped = reference.random_bits(key, np.arange(21)) < round(rate * 2**32)
    np.testing.assert_array_equal(y.reshape(-1) == 0, dropped)
    assert 0 < dropped.sum() < 21


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_and_integer_inputs(dtype):
    layer = _built(0.5, (4,), dtype=dtype)
    x = np.arange(24, dtype=np.float64).reshape(6, 4)[::2].astype(dtype)[:, ::-1]
    assert not x.flags.c_contiguous
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * x[kept])
    assert y.dtype == dtype
    ints = layer.forward(np.ones((3, 4), np.int64), training=True)
    assert ints.dtype == dtype and set(np.unique(ints)) <= {0.0, 2.0}


def test_inference_is_identity():
    layer = _built(0.5, (4,))
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    with pytest.raises(RuntimeError, match="without a preceding"):
        layer.backward(x)


def test_masks_come_from_the_layer_rng():
    x = np.ones((2, 50), dtype=np.float32)
    a, b, c = _built(0.5, (50,), 1), _built(0.5, (50,), 1), _built(0.5, (50,), 2)
    ya, yb, yc = (layer.forward(x, training=True) for layer in (a, b, c))
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    # Successive batches get fresh masks from the same generator.
    assert not np.array_equal(a.forward(x, training=True), ya)
    a.rng = None
    with pytest.raises(RuntimeError, match="Dropout"):
        a.forward(x, training=True)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, True, "0.5", None])
def test_rate_is_validated(rate):
    with pytest.raises(ValueError, match="Dropout"):
        Dropout(rate)


def test_flagged_as_having_a_training_mode():
    assert Dropout.has_training_mode
