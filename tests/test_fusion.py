"""The execution plan: which neighbours fuse, and a fused Conv2D + MaxPool2D(2) step
computing what the two layers compute, gradients included."""

import numpy as np
import pytest

from tinynet import Sequential, fusion
from tinynet.gradcheck import check_layer
from tinynet.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
)

GRAD_TOL = 1e-6


def unfused(model: Sequential) -> list:
    """The plan that runs every layer on its own."""
    return list(enumerate(model.layers))


def kinds(model: Sequential) -> list[str]:
    return [type(step).__name__ for _, step in model._steps]


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            [Conv2D(2, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3)],
            ["ConvPool", "Flatten", "Dense"],
        ),
        ([Conv2D(2, 3), MaxPool2D(2)], ["ConvPool"]),  # linear conv
        ([Conv2D(2, 3, activation="tanh"), MaxPool2D(2)], ["Conv2D", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(3)], ["Conv2D", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(2, strides=1)], ["Conv2D", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(2, padding="same")], ["Conv2D", "MaxPool2D"]),
        ([Conv2D(2, 3), AvgPool2D(2)], ["Conv2D", "AvgPool2D"]),
        ([MaxPool2D(2), Conv2D(2, 3)], ["MaxPool2D", "Conv2D"]),
    ],
)
def test_plan_fuses_only_conv_then_2x2_max_pool(layers, expected):
    model = Sequential(layers, input_shape=(9, 9, 2), seed=0)
    assert kinds(model) == expected
    # The steps cover every layer once, in order.
    covered = [layer for _, step in model._steps for layer in layers_of(step)]
    assert covered == model.layers


def convnet(
    conv_kwargs: dict, shape: tuple[int, int, int], filters: int, kernel: int
) -> Sequential:
    return Sequential(
        [
            Conv2D(filters, 3, activation="relu", **conv_kwargs),
            MaxPool2D(2),
            Conv2D(4, kernel, **conv_kwargs),  # linear, and it needs an input gradient
            MaxPool2D(2),
            Flatten(),
            Dropout(0.3),
            Dense(5, activation="softmax"),
        ],
        input_shape=shape,
        seed=1,
        dtype="float64",
    )


@pytest.mark.parametrize(
    ("conv_kwargs", "shape", "filters", "kernel", "winograd"),
    [
        ({}, (12, 11, 2), 3, 2, False),  # odd conv outputs: a row or column dropped
        ({"padding": "same"}, (9, 8, 1), 3, 2, False),
        ({"strides": 2, "padding": "same"}, (17, 16, 3), 3, 2, False),
        ({}, (14, 13, 2), 8, 3, True),  # the second conv: 3x3 over 8 channels
        ({"padding": "same"}, (10, 9, 1), 9, 3, True),
    ],
)
def test_fused_training_step_equals_the_layer_by_layer_one(
    conv_kwargs, shape, filters, kernel, winograd
):
    """Same outputs, loss and gradients for every parameter, to float64 rounding:
    the fused steps add in another order (the first layer's weight gradient) or
    compute the convolution by Winograd's algorithm."""
    model = convnet(conv_kwargs, shape, filters, kernel)
    model.compile(optimizer="sgd")
    assert kinds(model)[:2] == ["ConvPool", "ConvPool"]
    assert model.layers[2]._winograd() == winograd
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, *shape))
    y = rng.integers(0, 5, 7)
    fused_plan, weights = model._steps, model.get_weights()

    results = []
    for steps in (fused_plan, unfused(model)):
        model._steps = steps
        model.set_weights(weights)
        probs = model.predict(x)
        model.layers[5].rng = np.random.default_rng(3)  # the same dropout mask
        loss, logits = model.train_step(x, y)
        grads = {k: v.copy() for k, v in model.gradients().items()}
        results.append((loss, logits, grads, probs))
    (loss, logits, grads, probs), (loss_ref, logits_ref, grads_ref, probs_ref) = results
    tight = {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(loss, loss_ref, **tight)
    np.testing.assert_allclose(logits, logits_ref, **tight)
    np.testing.assert_allclose(probs, probs_ref, **tight)
    assert grads.keys() == grads_ref.keys() == {"0.W", "0.b", "2.W", "2.b", "6.W",
                                                "6.b"}  # fmt: skip
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_ref[key], **tight, err_msg=key)


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("needs_input_grad", [True, False])
@pytest.mark.parametrize("channels", [2, 8])  # im2col (+ direct dW), Winograd
def test_fused_step_passes_a_gradient_check(activation, needs_input_grad, channels):
    """Central differences in float64 on the fused step itself: input (when wanted),
    kernel and bias."""
    conv, pool = Conv2D(3, 3, activation=activation), MaxPool2D(2)
    # Small on purpose: the rounding error of a central difference grows with the
    # loss it differences, and on larger problems swamps the smallest entries of dx
    # (the layer-by-layer path then fails the same check by the same amount).
    shape = (6, 7, channels)
    model = Sequential([conv, pool], input_shape=shape, seed=4, dtype="float64")
    conv.needs_input_grad = needs_input_grad
    assert conv._winograd() == (channels == 8)
    (_, step), = model._steps  # fmt: skip
    assert isinstance(step, fusion.ConvPool)
    x = np.random.default_rng(6).standard_normal((2, *shape))
    if needs_input_grad:
        errors = check_layer(step, x)
        assert set(errors) == {"x", "W", "b"}
        assert max(errors.values()) < GRAD_TOL, errors
    else:
        step.forward(x, training=True)
        assert step.backward(np.ones((2, *step.output_shape))) is None


def test_fused_forward_keeps_nothing_in_inference_and_guards_backward():
    conv, pool = Conv2D(2, 3, activation="relu"), MaxPool2D(2)
    model = Sequential([conv, pool], input_shape=(6, 6, 1), seed=0)
    (_, step), = model._steps  # fmt: skip
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float32)
    step.forward(x, training=True)
    # The pool layer did not run, so its own backward has nothing to use.
    with pytest.raises(RuntimeError, match="without a preceding"):
        pool.backward(np.ones((2, 2, 2, 2), np.float32))
    # Nor does the conv's unfused backward accept the fused cache.
    with pytest.raises(RuntimeError, match="backward_pooled"):
        conv.backward(np.ones((2, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="gradient of shape"):
        step.backward(np.ones((2, 3, 3, 2), np.float32))
    step.forward(x, training=False)
    assert conv._cache is None and conv._workspace is None
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(np.ones((2, 2, 2, 2), np.float32))
    # The unfused layer path after a fused one: the conv's backward wants its own.
    conv.forward(x, training=True)
    with pytest.raises(RuntimeError, match="forward_pooled"):
        conv.backward_pooled(np.ones((2, 2, 2, 2), np.float32))


def test_fused_step_names_the_layer_on_a_wrong_input_shape():
    model = Sequential(
        [Conv2D(2, 3, name="c1"), MaxPool2D(2)], input_shape=(6, 6, 1), seed=0
    )
    (_, step), = model._steps  # fmt: skip
    with pytest.raises(ValueError, match=r"Conv2D 'c1'.*\(batch, 6, 6, 1\)"):
        step.forward(np.zeros((2, 5, 6, 1), np.float32))


def test_forward_cannot_stop_inside_a_fused_step():
    model = Sequential(
        [Conv2D(2, 3), MaxPool2D(2), Flatten()], input_shape=(6, 6, 1), seed=0
    )
    x = np.zeros((1, 6, 6, 1), np.float32)
    assert model.forward(x, n_layers=2).shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match="inside a fused step"):
        model.forward(x, n_layers=1)


# ------------------------------------------------------------ Dense(relu) + Dropout
@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            [Dense(4, activation="relu"), Dropout(0.2), Dense(3)],
            ["DenseDropout", "Dense"],
        ),
        ([Dense(4), Dropout(0.2)], ["Dense", "Dropout"]),  # linear: y hides the mask
        ([Dense(4, activation="tanh"), Dropout(0.2)], ["Dense", "Dropout"]),
        ([Dense(4, activation="relu"), Dropout(0.0)], ["Dense", "Dropout"]),
        ([Dense(4), ReLU(), Dropout(0.2)], ["Dense", "ReLU", "Dropout"]),
        (
            [Dropout(0.2), Dense(4, activation="relu"), Dense(2)],
            ["Dropout", "Dense", "Dense"],
        ),
    ],
)
def test_plan_fuses_dense_relu_then_dropout(layers, expected):
    model = Sequential(layers, input_shape=(5,), seed=0)
    assert kinds(model) == expected
    covered = [layer for _, step in model._steps for layer in layers_of(step)]
    assert covered == model.layers


def layers_of(step) -> tuple:
    return step.layers if isinstance(step, fusion.FusedPair) else (step,)


def mlp(dtype: str = "float64") -> Sequential:
    return Sequential(
        [
            Flatten(),
            Dense(12, activation="relu"),
            Dropout(0.3),
            Dense(9, activation="relu", use_bias=False),
            Dropout(0.6),
            Dense(4, activation="softmax"),
        ],
        input_shape=(3, 5),
        seed=1,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_dense_dropout_training_equals_the_layer_by_layer_one(dtype):
    """Bit for bit: the same operations on the same numbers, and the same masks
    from the same generator."""
    model = mlp(dtype)
    model.compile(optimizer="adam")
    assert kinds(model) == [
        "Flatten",
        "DenseDropout",
        "DenseDropout",
        "Dense",
        "Softmax",
    ]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 3, 5)).astype(dtype)
    y = rng.integers(0, 4, 16)
    fused_plan, weights = model._steps, model.get_weights()

    results = []
    for steps in (fused_plan, unfused(model)):
        model._steps = steps
        model.set_weights(weights)
        model.compile(optimizer="adam")
        for layer in (model.layers[2], model.layers[4]):
            layer.rng = np.random.default_rng(3)
        losses = [model.train_step(x, y)[0] for _ in range(3)]  # 3 masks, 3 updates
        results.append((losses, model.get_weights(), model.predict(x)))
    (losses, after, probs), (losses_ref, after_ref, probs_ref) = results
    assert losses == losses_ref
    np.testing.assert_array_equal(probs, probs_ref)
    assert after.keys() == after_ref.keys()
    for key in after:
        np.testing.assert_array_equal(after[key], after_ref[key], err_msg=key)
        assert not np.array_equal(after[key], weights[key]), key


@pytest.mark.parametrize("needs_input_grad", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
def test_fused_dense_dropout_passes_a_gradient_check(needs_input_grad, use_bias):
    dense = Dense(6, activation="relu", use_bias=use_bias)
    model = Sequential([dense, Dropout(0.4)], input_shape=(5,), seed=4, dtype="float64")
    dense.needs_input_grad = needs_input_grad
    (_, step), = model._steps  # fmt: skip
    assert isinstance(step, fusion.DenseDropout)
    # Away from the ReLU's kink, where a central difference is not a derivative.
    x = np.random.default_rng(6).standard_normal((4, 5))
    z = x @ dense.params["W"] + (dense.params["b"] if use_bias else 0)
    x = x[np.all(np.abs(z) > 1e-3, axis=1)]
    assert len(x) >= 3
    if needs_input_grad:
        errors = check_layer(step, x)
        assert set(errors) == {"x", "W"} | ({"b"} if use_bias else set())
        assert max(errors.values()) < GRAD_TOL, errors
    else:
        y = step.forward(x, training=True)
        assert 0 < np.count_nonzero(y) < y.size
        assert step.backward(np.ones_like(y)) is None
        assert np.any(dense.grads["W"] != 0)


def test_fused_dense_dropout_keeps_nothing_in_inference_and_guards_backward():
    dense, drop = Dense(6, activation="relu", name="d1"), Dropout(0.5)
    model = Sequential([dense, drop], input_shape=(5,), seed=0)
    (_, step), = model._steps  # fmt: skip
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(step.forward(x), dense.forward(x))  # identity
    assert dense._cache is None and drop._cache is None
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(np.ones((3, 6), np.float32))
    step.forward(x, training=True)
    with pytest.raises(RuntimeError, match="without a preceding"):
        drop.backward(np.ones((3, 6), np.float32))
    with pytest.raises(RuntimeError, match="backward_dropout"):
        dense.backward(np.ones((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'd1'.*gradient of shape"):
        step.backward(np.ones((3, 5), np.float32))
    dense.forward(x, training=True)
    with pytest.raises(RuntimeError, match="forward_dropout"):
        dense.backward_dropout(np.ones((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'd1'.*\(batch, 5\)"):
        step.forward(np.zeros((3, 4), np.float32), training=True)
