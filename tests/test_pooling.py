"""MaxPool2D, AvgPool2D and GlobalAvgPool2D: contract, gradients, Keras semantics."""

import numpy as np
import pytest
from layer_harness import assert_gradients, check_layer_contract

from tinynet.layers import (
    LAYERS,
    AvgPool2D,
    GlobalAvgPool2D,
    MaxPool2D,
    layer_from_config,
    layer_to_config,
)

CONTRACT_CASES = {
    "max 2x2": (MaxPool2D, (6, 5, 2)),
    "max 3x3 stride 2 same": (lambda: MaxPool2D(3, 2, padding="same"), (5, 6, 2)),
    "max (2, 3) stride (1, 2)": (lambda: MaxPool2D((2, 3), (1, 2)), (4, 7, 3)),
    "avg 2x2": (AvgPool2D, (6, 5, 2)),
    "avg 3x3 stride 2 same": (lambda: AvgPool2D(3, 2, padding="same"), (5, 6, 2)),
    "avg (3, 2) stride 1 same": (lambda: AvgPool2D((3, 2), 1, "same"), (4, 5, 1)),
    "global avg": (GlobalAvgPool2D, (3, 4, 5)),
}


@pytest.mark.parametrize("case", sorted(CONTRACT_CASES))
def test_layer_contract(case):
    make, shape = CONTRACT_CASES[case]
    check_layer_contract(make, shape)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize(
    ("pool_size", "strides", "padding", "shape"),
    [
        (2, None, "valid", (7, 7, 2)),  # the last row and column are dropped
        (3, 1, "valid", (5, 4, 2)),  # overlapping windows add up
        (2, None, "same", (5, 3, 2)),
        (3, 2, "same", (6, 7, 1)),
        (4, 3, "same", (2, 5, 2)),  # the window is larger than the input
    ],
)
def test_gradients(cls, pool_size, strides, padding, shape):
    assert_gradients(lambda: cls(pool_size, strides, padding), shape, batch=2)


def test_maxpool_by_hand():
    x = np.array(
        [[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 9, 8], [7, 0, 8, 9]], dtype=np.float32
    ).reshape(1, 4, 4, 1)
    layer = MaxPool2D()
    layer.build((4, 4, 1))
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 5], [7, 9]])
    dx = layer.backward(np.array([[1, 2], [3, 4]], np.float32).reshape(1, 2, 2, 1))
    # The bottom-right window holds two 9s: the first in row-major order wins.
    expected = np.zeros((4, 4), np.float32)
    expected[1, 1], expected[0, 2], expected[3, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_maxpool_same_padding_never_wins():
    # All inputs negative: a zero-padded max would return 0 at the border.
    layer = MaxPool2D(2, padding="same")
    layer.build((3, 3, 1))
    x = -1.0 - np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    y = layer.forward(x)[0, :, :, 0]
    np.testing.assert_array_equal(y, [[-1, -3], [-7, -9]])


def test_avgpool_same_padding_counts_only_real_entries():
    # Keras/TF: a border window averages the entries it holds, so a constant input
    # stays constant (dividing by the full window size would shrink the border).
    layer = AvgPool2D(2, padding="same")
    layer.build((3, 3, 2))
    y = layer.forward(np.full((1, 3, 3, 2), 5.0, np.float32))
    assert y.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(y, 5.0)


def test_avgpool_by_hand():
    layer = AvgPool2D(2, strides=1)
    layer.build((2, 3, 1))
    x = np.array([[1, 2, 3], [4, 5, 9]], dtype=np.float64).reshape(1, 2, 3, 1)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, :, :, 0], [[3.0, 4.75]])
    dx = layer.backward(np.array([[4.0, 8.0]]).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 3, 2], [1, 3, 2]])


def test_global_avgpool_values():
    layer = GlobalAvgPool2D()
    assert layer.build((2, 3, 4)) == (4,)
    x = np.random.default_rng(0).standard_normal((5, 2, 3, 4)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-6)
    dx = layer.backward(np.ones((5, 4), np.float32))
    np.testing.assert_allclose(dx, 1 / 6)


def test_large_window_maxpool_matches_numpy():
    # 17x17 windows have more offsets than a uint8 holds.
    layer = MaxPool2D(17, strides=1)
    layer.build((17, 18, 2))
    x = np.random.default_rng(0).standard_normal((2, 17, 18, 2)).astype(np.float32)
    y = layer.forward(x, training=True)
    expected = np.stack([x[:, :, :17].max(axis=(1, 2)), x[:, :, 1:].max(axis=(1, 2))])
    np.testing.assert_array_equal(y[:, 0], expected.transpose(1, 0, 2))
    dx = layer.backward(np.ones_like(y))
    assert dx.sum() == y.size


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_strides_default_to_pool_size_and_config_round_trips(cls):
    layer = cls((3, 2), name="p")
    assert layer.strides == (3, 2)
    assert LAYERS[cls.__name__] is cls
    clone = layer_from_config(layer_to_config(layer))
    assert clone.get_config() == layer.get_config()
    assert clone.get_config() == {
        "name": "p",
        "pool_size": [3, 2],
        "strides": [3, 2],
        "padding": "valid",
    }
    assert cls(2).build((26, 26, 32)) == (13, 13, 32)
    assert cls(2).build((11, 11, 64)) == (5, 5, 64)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D, GlobalAvgPool2D])
def test_build_rejects_non_image_input(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'p'.*\(28, 28\)"):
        cls(name="p").build((28, 28))


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_build_rejects_window_larger_than_valid_input(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}.*3x3.*2x5"):
        cls(3).build((2, 5, 1))


@pytest.mark.parametrize(
    "kwargs",
    [{"pool_size": 0}, {"pool_size": (2, 2, 2)}, {"strides": -1}, {"padding": "x"}],
)
def test_constructor_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="MaxPool2D"):
        MaxPool2D(**kwargs)
