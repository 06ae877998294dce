"""Conv2D: the layer contract, gradients over strides/padding, Keras geometry, errors,
Conv2D -> BatchNorm gradients, and a small CNN that learns."""

import numpy as np
import pytest
from layer_harness import (
    assert_gradients,
    away_from_zero,
    check_layer_contract,
)

from tinynet.gradcheck import numerical_gradient, rel_error
from tinynet.kernels import reference, window_geometry
from tinynet.layers import (
    LAYERS,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    layer_from_config,
    layer_to_config,
)
from tinynet.optimizers import Adam

CONTRACT_CASES = {
    "3x3 valid": (lambda: Conv2D(3, 3), (5, 6, 2), None),
    "2x3 stride 2 same tanh": (
        lambda: Conv2D(3, (2, 3), strides=2, padding="same", activation="tanh"),
        (5, 6, 2),
        None,
    ),
    "1x1 no bias": (lambda: Conv2D(2, 1, use_bias=False), (4, 3, 3), None),
    "relu": (lambda: Conv2D(2, 3, activation="relu"), (4, 4, 1), away_from_zero()),
}


@pytest.mark.parametrize("case", sorted(CONTRACT_CASES))
def test_layer_contract(case):
    make, shape, make_input = CONTRACT_CASES[case]
    kwargs = {"make_input": make_input} if make_input else {}
    check_layer_contract(make, shape, **kwargs)


@pytest.mark.parametrize(
    ("kernel_size", "strides", "padding", "shape"),
    [
        (3, 1, "valid", (6, 5, 2)),
        (3, 2, "valid", (7, 6, 2)),
        (3, 2, "same", (6, 7, 3)),  # odd total padding on one axis
        ((2, 3), (1, 2), "same", (5, 5, 2)),
        (4, 3, "same", (5, 4, 1)),
        (1, 2, "valid", (5, 5, 3)),
        (5, 1, "same", (3, 3, 2)),  # the kernel is larger than the input
    ],
)
def test_gradients_over_strides_and_padding(kernel_size, strides, padding, shape):
    errors = assert_gradients(
        lambda: Conv2D(3, kernel_size, strides=strides, padding=padding),
        shape,
        batch=2,
    )
    assert set(errors) == {"x", "W", "b"}


def test_matches_the_direct_convolution_in_float32():
    rng = np.random.default_rng(0)
    layer = Conv2D(8, 3, strides=2, padding="same")
    layer.build((9, 10, 4), rng, np.float32)
    x = rng.standard_normal((3, 9, 10, 4)).astype(np.float32)
    y = layer.forward(x)
    ho, pt = window_geometry(9, 3, 2, "same")
    wo, pl = window_geometry(10, 3, 2, "same")
    cols = np.empty((3 * ho * wo, 3 * 3 * 4), np.float32)
    expected, _ = reference.conv2d_forward(
        x, layer.params["W"], layer.params["b"], 2, 2, pt, pl, ho, wo, cols
    )
    assert y.dtype == np.float32 and y.shape == (3, 5, 5, 8)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_same_padding_puts_the_extra_row_and_column_after():
    # 4x4 ones, 2x2 kernel of ones, stride 1, "same": padding 0 before and 1 after,
    # so the last row and column see half a window and the corner a quarter.
    layer = Conv2D(1, 2, padding="same", kernel_initializer="ones")
    layer.build((4, 4, 1), np.random.default_rng(0), np.float64)
    y = layer.forward(np.ones((1, 4, 4, 1)))[0, :, :, 0]
    expected = np.full((4, 4), 4.0)
    expected[-1, :] = expected[:, -1] = 2.0
    expected[-1, -1] = 1.0
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    ("kwargs", "input_shape", "output_shape"),
    [
        ({"filters": 32, "kernel_size": 3}, (28, 28, 1), (26, 26, 32)),
        ({"filters": 4, "kernel_size": 3, "strides": 2}, (7, 8, 2), (3, 3, 4)),
        (
            {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
            (7, 8, 2),
            (4, 4, 4),
        ),
        ({"filters": 2, "kernel_size": (1, 3)}, (5, 5, 3), (5, 3, 2)),
    ],
)
def test_output_shapes_follow_keras(kwargs, input_shape, output_shape):
    layer = Conv2D(**kwargs)
    assert layer.build(input_shape, np.random.default_rng(0)) == output_shape
    assert layer.params["W"].shape == (
        *layer.kernel_size,
        input_shape[-1],
        kwargs["filters"],
    )


def test_kernel_initializer_uses_conv_fans():
    # glorot_uniform on (3, 3, 4, 8): limit sqrt(6 / (36 + 72)).
    layer = Conv2D(8, 3)
    layer.build((10, 10, 4), np.random.default_rng(0))
    limit = np.sqrt(6 / (3 * 3 * 4 + 3 * 3 * 8))
    w = layer.params["W"]
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    np.testing.assert_array_equal(layer.params["b"], 0)


@pytest.mark.parametrize(
    ("input_shape", "match"),
    [
        ((28, 28), r"Conv2D 'c1'.*\(height, width, channels\).*\(28, 28\)"),
        ((4, 4, 4, 1), r"Conv2D 'c1'.*\(4, 4, 4, 1\)"),
        ((2, 5, 3), r"Conv2D 'c1'.*3x3.*2x5.*valid"),
    ],
)
def test_build_rejects_unsuitable_inputs(input_shape, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(4, 3, name="c1").build(input_shape, np.random.default_rng(0))


def test_forward_rejects_wrong_channel_count():
    layer = Conv2D(4, 3, name="c1")
    layer.build((6, 6, 3), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"Conv2D 'c1'.*\(2, 6, 6, 2\)"):
        layer.forward(np.zeros((2, 6, 6, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filters": 0, "kernel_size": 3},
        {"filters": 2.5, "kernel_size": 3},
        {"filters": True, "kernel_size": 3},
        {"filters": 4, "kernel_size": 0},
        {"filters": 4, "kernel_size": (3, 3, 3)},
        {"filters": 4, "kernel_size": 3, "strides": (1, -1)},
        {"filters": 4, "kernel_size": 3, "padding": "full"},
        {"filters": 4, "kernel_size": 3, "kernel_initializer": "nope"},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Conv2D"):
        Conv2D(**kwargs)


def test_config_round_trip_and_registry():
    layer = Conv2D(
        5, (3, 1), strides=(2, 1), padding="same", activation="relu", use_bias=False
    )
    assert LAYERS["Conv2D"] is Conv2D
    clone = layer_from_config(layer_to_config(layer))
    assert clone.get_config() == layer.get_config()
    assert clone.get_config()["kernel_size"] == [3, 1]
    assert clone.get_config()["activation"] == "relu"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_matches_a_separate_relu_layer(dtype):
    # Conv2D(activation="relu") fuses the ReLU into its kernels; it must give what
    # the linear convolution followed by a ReLU layer gives, forward and backward.
    rng = np.random.default_rng(3)
    fused = Conv2D(4, 3, strides=2, padding="same", activation="relu")
    fused.build((7, 6, 3), rng, dtype)
    fused.params["b"][...] = rng.standard_normal(4)
    linear = Conv2D(4, 3, strides=2, padding="same")
    linear.build((7, 6, 3), np.random.default_rng(9), dtype)
    for k in fused.params:
        linear.params[k][...] = fused.params[k]
    relu = ReLU()
    relu.build(linear.output_shape, rng, dtype)
    x = rng.standard_normal((3, 7, 6, 3)).astype(dtype)
    y = fused.forward(x, training=True)
    z = linear.forward(x, training=True)
    assert np.any(z < 0) and np.any(z > 0)
    np.testing.assert_array_equal(y, relu.forward(z, training=True))
    dout = rng.standard_normal(y.shape).astype(dtype)
    dx = fused.backward(dout)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, linear.backward(relu.backward(dout)), atol=tol)
    for k in ("W", "b"):
        np.testing.assert_allclose(fused.grads[k], linear.grads[k], rtol=tol, atol=tol)
    assert dx.dtype == fused.grads["W"].dtype == dtype
    # A second step reuses the im2col buffer: same results.
    fused.forward(x, training=True)
    np.testing.assert_array_equal(fused.backward(dout), dx)


def test_split_activation_leaves_the_linear_convolution():
    rng = np.random.default_rng(0)
    layer = Conv2D(3, 3, activation="relu")
    layer.build((5, 5, 2), rng, np.float32)
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    y = layer.forward(x)
    relu = layer.split_activation()
    assert isinstance(relu, ReLU) and relu.output_shape == (3, 3, 3)
    assert layer.get_config()["activation"] is None
    z = layer.forward(x)
    assert np.any(z < 0)
    np.testing.assert_array_equal(relu.forward(z), y)


def test_reused_im2col_buffer_holds_the_latest_batch():
    rng = np.random.default_rng(0)
    layer = Conv2D(4, 3, strides=2, padding="same")
    layer.build((6, 5, 3), rng, np.float64)
    x1, x2 = rng.standard_normal((2, 2, 6, 5, 3))
    dout = rng.standard_normal((2, 3, 3, 4))
    layer.forward(x1, training=True)
    layer.forward(x2, training=True)  # overwrites the same buffer
    dx = layer.backward(dout)
    fresh = Conv2D(4, 3, strides=2, padding="same")
    fresh.build((6, 5, 3), np.random.default_rng(1), np.float64)
    fresh.params["W"][...] = layer.params["W"]
    fresh.forward(x2, training=True)
    np.testing.assert_array_equal(dx, fresh.backward(dout))
    np.testing.assert_array_equal(layer.grads["W"], fresh.grads["W"])
    # Inference keeps nothing for backward.
    layer.forward(x1, training=False)
    with pytest.raises(RuntimeError, match="without a preceding"):
        layer.backward(dout)


def conv_bn_check(use_bias: bool):
    """Analytic and numerical gradients of sum(BN(conv(x)) * g), in float64."""
    rng = np.random.default_rng(0)
    conv, bn = Conv2D(3, 3, strides=2, padding="same", use_bias=use_bias), BatchNorm()
    shape = conv.build((5, 6, 2), rng, np.float64)
    bn.build(shape, rng, np.float64)
    bn.params["gamma"][...] = rng.uniform(0.5, 1.5, 3)
    bn.params["beta"][...] = rng.standard_normal(3)
    x = rng.standard_normal((4, 5, 6, 2))
    g = rng.standard_normal((4, *bn.output_shape))

    def loss() -> float:
        z = conv.forward(x, training=True)
        return float(np.sum(bn.forward(z, training=True) * g))

    loss()
    dx = conv.backward(bn.backward(g))
    analytic = {"x": dx, **conv.grads, **{f"bn.{k}": v for k, v in bn.grads.items()}}
    analytic = {k: v.copy() for k, v in analytic.items()}
    targets = {"x": x, **conv.params, **{f"bn.{k}": v for k, v in bn.params.items()}}
    numeric = {k: numerical_gradient(loss, v) for k, v in targets.items()}
    return analytic, numeric


def test_conv_then_batchnorm_gradients():
    # Keras style: no conv bias in front of BatchNorm.
    analytic, numeric = conv_bn_check(use_bias=False)
    assert set(analytic) == {"x", "W", "bn.gamma", "bn.beta"}
    for key in analytic:
        err = rel_error(analytic[key], numeric[key])
        assert err < 1e-6, f"{key}: relative error {err}"


def test_batchnorm_cancels_the_conv_bias():
    # BN subtracts each channel's mean, so a per-channel bias has no effect: its
    # true gradient is 0 (a relative error would only compare rounding noise).
    analytic, numeric = conv_bn_check(use_bias=True)
    assert np.abs(analytic["b"]).max() < 1e-12
    assert np.abs(numeric["b"]).max() < 1e-8
    for key in ("x", "W", "bn.gamma", "bn.beta"):
        err = rel_error(analytic[key], numeric[key])
        assert err < 1e-6, f"{key}: relative error {err}"


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images with one horizontal (label 0) or vertical (label 1) bar, plus noise.

    A bar can be anywhere, so a pixel on its own says little: the model has to
    detect the orientation of a local pattern, which a convolution does well.
    """
    y = rng.integers(0, 2, n)
    x = 0.3 * rng.standard_normal((n, 8, 8, 1))
    pos = rng.integers(0, 8, n)
    start = rng.integers(0, 4, n)
    for i in range(n):
        span = slice(start[i], start[i] + 5)
        if y[i] == 0:
            x[i, pos[i], span, 0] += 1.0
        else:
            x[i, span, pos[i], 0] += 1.0
    return x.astype(np.float32), y


def test_small_cnn_learns_bar_orientation():
    from tinynet import Sequential

    rng = np.random.default_rng(0)
    x_train, y_train = bars(512, rng)
    x_test, y_test = bars(256, rng)
    model = Sequential(
        [
            Conv2D(8, 3, padding="same", activation="relu"),
            MaxPool2D(2),
            Conv2D(8, 3, activation="relu"),
            Flatten(),
            Dense(2, activation="softmax"),
        ],
        input_shape=(8, 8, 1),
        seed=0,
    )
    model.compile(optimizer=Adam(3e-3), loss="cross_entropy", metrics=["accuracy"])
    before = model.evaluate(x_test, y_test)["accuracy"]
    model.fit(x_train, y_train, epochs=12, batch_size=32, seed=0, verbose=0)
    after = model.evaluate(x_test, y_test)["accuracy"]
    assert before < 0.75
    assert after > 0.95, f"accuracy {before:.3f} -> {after:.3f}"
